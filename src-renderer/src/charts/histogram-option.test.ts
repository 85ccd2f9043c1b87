import { describe, expect, it } from 'vitest'
import type { Histogram } from '@contract/api'
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
