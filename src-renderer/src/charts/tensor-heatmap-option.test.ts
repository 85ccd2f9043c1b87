import { describe, expect, it } from 'vitest'
import { heatmapCells, heatmapMax, sourceRange, tensorHeatmapOption } from './tensor-heatmap-option'

describe('tensor heatmap', () => {
  it('lays values out row-major as [column, row, value]', () => {
    const hm = { rows: 2, cols: 3, values: [1, 2, 3, 4, 5, 6], sourceShape: [2, 3] as [number, number] }
    expect(heatmapCells(hm)).toEqual([
      [0, 0, 1],
      [1, 0, 2],
      [2, 0, 3],
      [0, 1, 4],
      [1, 1, 5],
      [2, 1, 6],
    ])
    const option = tensorHeatmapOption(hm) as { visualMap: { min: number; max: number } }
    expect(option.visualMap).toMatchObject({ min: 0, max: 6 })
  })

  it('never reads past the values it was given', () => {
    const short = { rows: 2, cols: 2, values: [1, 2, 3], sourceShape: [2, 2] as [number, number] }
    expect(heatmapCells(short)).toHaveLength(3)
  })

  it('keeps a valid colour scale for an all-zero tensor', () => {
    expect(heatmapMax([0, 0, 0])).toBe(1)
    expect(heatmapMax([0, Number.NaN, 2, Number.POSITIVE_INFINITY])).toBe(2)
  })

  it('splits the source into contiguous blocks that cover every index once', () => {
    for (const [cells, source] of [
      [96, 172],
      [64, 64],
      [96, 11008],
      [7, 10],
      [3, 3],
    ]) {
      let next = 0
      for (let c = 0; c < cells; c++) {
        const [first, last] = sourceRange(c, cells, source)
        expect(first).toBe(next)
        expect(last).toBeGreaterThanOrEqual(first)
        next = last + 1
      }
      expect(next).toBe(source)
    }
  })
})
