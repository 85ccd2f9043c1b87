import { describe, expect, it } from 'vitest'
import type { ChannelProfile } from '@contract/api'
import { channelAxisMax, channelOption, channelSeriesData, niceCeil, outlierChannels } from './channel-option'

describe('channel profile', () => {
  const profile: ChannelProfile = {
    axis: 'in',
    absmax: [1, 2, 1.5, 30, 1, 12, 0.5],
    l2: [1, 1, 1, 1, 1, 1, 1],
    median: 1.5,
    outliers: [3, 5],
  }

  it('splits bars into plain and outlier series at exactly the outlier indices', () => {
    const { plain, outliers } = channelSeriesData(profile)
    expect(outliers).toEqual([null, null, null, 30, null, 12, null])
    expect(plain).toEqual([1, 2, 1.5, null, 1, null, 0.5])
    const option = channelOption(profile, 6) as {
      series: { data: unknown[]; markLine?: { data: { yAxis: number }[]; lineStyle: { type: string } } }[]
    }
    expect(option.series).toHaveLength(2)
    expect(option.series[0].markLine!.data[0].yAxis).toBe(9)
    expect(option.series[0].markLine!.lineStyle.type).toBe('dashed')
  })

  it('lists outliers largest first and ignores indices outside the profile', () => {
    const withJunk = { ...profile, outliers: [5, 3, 99, -1] }
    expect(outlierChannels(withJunk)).toEqual([
      { index: 3, absmax: 30 },
      { index: 5, absmax: 12 },
    ])
  })

  it('stretches the value axis to show the threshold line only when the data stays below it', () => {
    // threshold 6 × 1.5 = 9 < 30: ECharts chooses.
    expect(channelAxisMax(profile, 9)).toBeUndefined()
    // threshold 60 > 30: the axis must reach past 60.
    const max = channelAxisMax(profile, 60)!
    expect(max).toBeGreaterThanOrEqual(60 * 1.05)
    expect(max).toBeLessThanOrEqual(80)
  })

  it('rounds axis ends up to short mantissas', () => {
    expect(niceCeil(0.2682)).toBe(0.3)
    expect(niceCeil(1.924)).toBe(2)
    expect(niceCeil(63)).toBe(80)
    expect(niceCeil(100)).toBe(100)
    expect(niceCeil(0)).toBe(1)
  })
})
