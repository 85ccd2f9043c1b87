import { describe, expect, it } from 'vitest'
import type { HeadWeights } from '@contract/api'
import { headSliceOption, sliceAxes, symmetricMax } from './head-weights-option'
import { colourScale, headCells, headFromClick, headHeatmapOption } from './heads-option'
import { layerBarOption, layerBars } from './layers-option'
import { CHART_COLORS } from './palette'

describe('head heatmaps', () => {
  const matrix = [
    [0.5, 0.1, 0.2],
    [0.05, 0.9, Number.NaN],
  ]

  it('puts heads on x and layers on y, skipping values it cannot colour', () => {
    const cells = headCells(matrix, null)
    expect(cells).toHaveLength(5)
    for (const c of cells) {
      const [head, layer, v] = c.value
      expect(v).toBe(matrix[layer][head])
      expect(c.itemStyle).toBeUndefined()
    }
  })

  it('outlines exactly the selected head', () => {
    const cells = headCells(matrix, { layer: 1, head: 1 })
    const outlined = cells.filter((c) => c.itemStyle)
    expect(outlined.map((c) => c.value.slice(0, 2))).toEqual([[1, 1]])
    expect(outlined[0].itemStyle!.borderWidth).toBeGreaterThan(1)
  })

  it('uses one warm hue for non-negative measures and a zero-centred diverging scale otherwise', () => {
    expect(colourScale([0.1, 0.9, 0.3])).toEqual({ min: 0, max: 0.9, colors: CHART_COLORS.score })
    expect(colourScale([0.4, -0.1, 0.2])).toEqual({ min: -0.4, max: 0.4, colors: CHART_COLORS.diverging })
    expect(colourScale([-2, 0.5])).toMatchObject({ min: -2, max: 2 })
    // All zero (or nothing finite): still a valid scale.
    expect(colourScale([0, Number.NaN])).toMatchObject({ min: 0, max: 1 })
  })

  it('labels axes by head and layer, and names the measure', () => {
    const option = headHeatmapOption(matrix, 'ΔNLL', null) as {
      xAxis: { data: string[] }
      yAxis: { data: string[]; inverse: boolean }
      series: { name: string }[]
      visualMap: { min: number; max: number }
    }
    expect(option.xAxis.data).toEqual(['0', '1', '2'])
    expect(option.yAxis.data).toEqual(['L0', 'L1'])
    expect(option.yAxis.inverse).toBe(true)
    expect(option.series[0].name).toBe('ΔNLL')
    expect(option.visualMap).toMatchObject({ min: 0, max: 0.9 })
  })

  it('reads the head back from a click, refusing clicks without a cell', () => {
    expect(headFromClick({ value: [3, 2, 0.5] })).toEqual({ layer: 2, head: 3 })
    expect(headFromClick({ value: 7 })).toBeNull()
    expect(headFromClick({})).toBeNull()
    expect(headFromClick({ value: [1.5, 0, 1] })).toBeNull()
  })
})

describe('head weights', () => {
  const q: HeadWeights['slices'][number] = {
    role: 'q', rows: 2, cols: 3, values: [0.5, -2, 1, 0, 0.25, -0.75], sourceShape: [8, 64],
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
    expect(option.series[0].data).toEqual([[0, 0, 0.5], [1, 0, -2], [2, 0, 1], [0, 1, 0], [1, 1, 0.25], [2, 1, -0.75]])
  })

  it('labels pooled axes by the first source index of each cell, and names them by role', () => {
    const option = headSliceOption(q) as { xAxis: { data: string[]; name: string }; yAxis: { data: string[]; name: string } }
    expect(option.xAxis.data).toEqual(['0', '22', '43'])
    expect(option.yAxis.data).toEqual(['0', '4'])
    expect(option.yAxis.name).toBe('head dim (8)')
    expect(sliceAxes({ ...q, role: 'o', sourceShape: [64, 8] })).toEqual({ rows: 'out (64)', cols: 'head dim (8)' })
  })
})

describe('layer bars', () => {
  it('draws one bar per block, negative ones in their own colour, gaps for non-finite values', () => {
    const bars = layerBars([0.5, -0.2, Number.NaN, 0])
    expect(bars.map((b) => b.value)).toEqual([0.5, -0.2, null, 0])
    expect(bars[1].itemStyle?.color).toBe(CHART_COLORS.negative)
    expect(bars[0].itemStyle).toBeUndefined()
    expect(bars[3].itemStyle).toBeUndefined()
  })

  it('labels blocks from 0 and names the measure', () => {
    const option = layerBarOption([2.4, 1.3, 0.85], { name: 'ΔNLL', axisName: 'ΔNLL' }) as {
      xAxis: { data: string[] }
      yAxis: { name: string }
      series: { name: string; data: { value: number | null }[] }[]
    }
    expect(option.xAxis.data).toEqual(['0', '1', '2'])
    expect(option.yAxis.name).toBe('ΔNLL')
    expect(option.series[0].data.map((d) => d.value)).toEqual([2.4, 1.3, 0.85])
  })
})
