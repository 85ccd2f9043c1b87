import { describe, expect, it } from 'vitest'
import type { Histogram } from '@contract/api'
import { histogramOverlayOption, OVERLAY_SERIES, sameBinning } from './histogram-overlay-option'

describe('before/after histogram overlay', () => {
  const before: Histogram = { lo: -1, hi: 1, counts: [1, 4, 0, 2], below: 0, above: 0 }
  const after: Histogram = { lo: -1, hi: 1, counts: [0, 5, 0, 1], below: 0, above: 1 }

  it('draws the compressed bars beside the original ones, on the same bins', () => {
    const option = histogramOverlayOption(before, after, false) as {
      xAxis: { data: string[] }
      series: { type: string; name: string; data: (number | null)[]; barGap?: string }[]
    }
    expect(option.xAxis.data).toEqual(['-0.75', '-0.25', '0.25', '0.75'])
    expect(option.series.map((s) => [s.type, s.name])).toEqual([
      ['bar', OVERLAY_SERIES.before],
      ['bar', OVERLAY_SERIES.after],
    ])
    expect(option.series[0].data).toEqual([1, 4, 0, 2])
    expect(option.series[1].data).toEqual([0, 5, 0, 1])
    // Side by side in each bin: a non-negative gap, never the −100% that stacks one bar over the other.
    expect(option.series.every((x) => x.barGap !== undefined && !x.barGap.startsWith('-'))).toBe(true)
  })

  it('leaves empty bins out on a log axis', () => {
    const option = histogramOverlayOption(before, after, true) as {
      yAxis: { type: string }
      series: { data: (number | null)[] }[]
    }
    expect(option.yAxis.type).toBe('log')
    expect(option.series[0].data).toEqual([1, 4, null, 2])
    expect(option.series[1].data).toEqual([null, 5, null, 1])
  })

  it('refuses histograms that do not share their bins', () => {
    expect(sameBinning(before, { ...after, hi: 1 + 1e-15 })).toBe(true)
    expect(sameBinning(before, { ...after, hi: 1.01 })).toBe(false)
    expect(sameBinning(before, { ...after, counts: [1, 2, 3] })).toBe(false)
    expect(() => histogramOverlayOption(before, { ...after, lo: -2 }, false)).toThrow(/bins/)
  })
})
