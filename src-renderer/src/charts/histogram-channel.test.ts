import { describe, expect, it } from 'vitest'
import type { ChannelProfile, Histogram } from '@contract/api'
import { channelAxisMax, channelOption, channelSeriesData, niceCeil, outlierChannels } from './channel-option'
import { histogramBins, histogramOption, histogramSeriesData } from './histogram-option'

describe('histogram', () => {
  const h: Histogram = { lo: -1, hi: 3, counts: [5, 0, 7, 1], below: 0, above: 0 }

  it('places bins evenly over [lo, hi] with centres halfway', () => {
    const bins = histogramBins(h)
    expect(bins.map((b) => [b.lo, b.hi, b.centre])).toEqual([
      [-1, 0, -0.5],
      [0, 1, 0.5],
      [1, 2, 1.5],
      [2, 3, 2.5],
    ])
    expect(bins.map((b) => b.count)).toEqual(h.counts)
  })

  it('ends the last bin exactly at hi despite rounding', () => {
    const odd: Histogram = { lo: 0.1, hi: 0.7, counts: [1, 1, 1], below: 0, above: 0 }
    expect(histogramBins(odd).at(-1)!.hi).toBe(0.7)
  })

  it('drops empty bins on a log axis instead of plotting log(0)', () => {
    expect(histogramSeriesData(h, false)).toEqual([5, 0, 7, 1])
    expect(histogramSeriesData(h, true)).toEqual([5, null, 7, 1])
    const option = histogramOption(h, true) as { yAxis: { type: string } }
    expect(option.yAxis.type).toBe('log')
    expect((histogramOption(h, false) as { yAxis: { type: string } }).yAxis.type).toBe('value')
  })

  it('starts the log axis below 1, so a bin holding one value (an outlier) has a visible bar', () => {
    const option = histogramOption(h, true) as { yAxis: { min: number; nameLocation: string } }
    expect(option.yAxis.min).toBeLessThan(1)
    expect(option.yAxis.min).toBeGreaterThan(0)
    expect(Math.log10(1) - Math.log10(option.yAxis.min)).toBeGreaterThan(0.25)
    // The axis title runs along the axis instead of being clipped at the top left.
    expect(option.yAxis.nameLocation).toBe('middle')
  })

  it('has an inside and a slider zoom along the values', () => {
    const zoom = histogramOption(h, false).dataZoom as { type: string }[]
    expect(zoom.map((z) => z.type).sort()).toEqual(['inside', 'slider'])
  })
})

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
    const option = channelOption(profile, 6) as { series: { data: unknown[]; markLine?: { data: { yAxis: number }[]; lineStyle: { type: string } } }[] }
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
