import { describe, expect, it } from 'vitest'
import type { HeadWeights } from '@contract/api'
import { headSliceOption, sliceAxes, symmetricMax } from './head-weights-option'
import { CHART_COLORS } from './palette'

describe('head weights', () => {
  const q: HeadWeights['slices'][number] = {
    role: 'q',
    rows: 2,
    cols: 3,
    values: [0.5, -2, 1, 0, 0.25, -0.75],
    sourceShape: [8, 64],
  }

  it('centres the colour scale on zero at the largest magnitude', () => {
    expect(symmetricMax(q.values)).toBe(2)
    expect(symmetricMax([0, 0])).toBe(1)
    expect(symmetricMax([Number.NaN, -3, Number.POSITIVE_INFINITY])).toBe(3)
    const option = headSliceOption(q) as { visualMap: { min: number; max: number; inRange: { color: string[] } } }
    expect(option.visualMap.min).toBe(-2)
    expect(option.visualMap.max).toBe(2)
    expect(option.visualMap.inRange.color).toEqual([...CHART_COLORS.diverging])
  })

  it('keeps signs in the cells, row-major', () => {
    const option = headSliceOption(q) as { series: { data: [number, number, number][] }[] }
    expect(option.series[0].data).toEqual([
      [0, 0, 0.5],
      [1, 0, -2],
      [2, 0, 1],
      [0, 1, 0],
      [1, 1, 0.25],
      [2, 1, -0.75],
    ])
  })

  it('labels pooled axes by the first source index of each cell, and names them by role', () => {
    const option = headSliceOption(q) as {
      xAxis: { data: string[]; name: string }
      yAxis: { data: string[]; name: string }
    }
    expect(option.xAxis.data).toEqual(['0', '22', '43'])
    expect(option.yAxis.data).toEqual(['0', '4'])
    expect(option.yAxis.name).toBe('head dim (8)')
    expect(sliceAxes({ ...q, role: 'o', sourceShape: [64, 8] })).toEqual({ rows: 'out (64)', cols: 'head dim (8)' })
  })
})
