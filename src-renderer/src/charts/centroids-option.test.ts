import { describe, expect, it } from 'vitest'
import type { Histogram } from '@contract/api'
import { CENTROID_SERIES, centroidsAxisRange, centroidsOption } from './centroids-option'

interface Drawn {
  xAxis: { type: string; min: number; max: number }
  yAxis: { type: string }
  legend: { data: string[] }
  series: { type: string; name: string; data: unknown[]; markLine?: { data: { xAxis: number }[] } }[]
}

describe('centroids on the histogram', () => {
  // Dense near zero, thin tails: the shape a learned grid follows and a uniform one does not.
  const histogram: Histogram = { lo: -1, hi: 1, counts: [1, 6, 0, 6], below: 0, above: 0 }
  const centroids = [-0.6, -0.1, 0.1, 0.6]

  it('draws each learned centroid and the uniform grid with as many levels between the same ends', () => {
    const option = centroidsOption(centroids, histogram, false) as unknown as Drawn
    const byName = Object.fromEntries(option.series.map((s) => [s.name, s]))
    expect(option.legend.data).toEqual([CENTROID_SERIES.histogram, CENTROID_SERIES.learned, CENTROID_SERIES.uniform])
    expect(byName[CENTROID_SERIES.learned].markLine!.data.map((d) => d.xAxis)).toEqual([-0.6, -0.1, 0.1, 0.6])
    const uniform = byName[CENTROID_SERIES.uniform].markLine!.data.map((d) => d.xAxis)
    expect(uniform).toHaveLength(4)
    ;[-0.6, -0.2, 0.2, 0.6].forEach((x, i) => expect(uniform[i]).toBeCloseTo(x, 12))
    // The histogram as counts over bin centres on a value axis, so the marks stand at their exact values.
    expect(option.xAxis.type).toBe('value')
    expect(byName[CENTROID_SERIES.histogram].data).toEqual([
      [-0.75, 1],
      [-0.25, 6],
      [0.25, 0],
      [0.75, 6],
    ])
  })

  it('leaves empty bins out on a log axis', () => {
    const option = centroidsOption(centroids, histogram, true) as unknown as Drawn
    expect(option.yAxis.type).toBe('log')
    expect(option.series[0].data[2]).toEqual([0.25, null])
    expect(option.series[0].data[0]).toEqual([-0.75, 1])
  })

  it('spans the histogram and every mark, centroids beyond the histogram included', () => {
    expect(centroidsAxisRange(centroids, histogram)).toEqual([-1.04, 1.04])
    const [lo, hi] = centroidsAxisRange([-2, 0.5], histogram)
    expect(lo).toBeCloseTo(-2.06, 12)
    expect(hi).toBeCloseTo(1.06, 12)
  })

  it('draws the marks alone while the histogram is not read yet', () => {
    const option = centroidsOption(centroids, null, false) as unknown as Drawn
    expect(option.series[0].data).toEqual([])
    expect(option.xAxis.min).toBeCloseTo(-0.624, 12)
    expect(option.xAxis.max).toBeCloseTo(0.624, 12)
    expect(option.series[1].markLine!.data).toHaveLength(4)
  })
})
