import { describe, expect, it } from 'vitest'
import { colourScale, headCells, headFromClick, headHeatmapOption } from './heads-option'
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
