import { describe, expect, it } from 'vitest'
import type { ScanCell, ScanResult, TensorRole } from '@contract/api'
import { describeScanCell, scanCellAt, scanGrid, scanHeatmapData, scanOption } from './scan-option'
import { heatmapCells, heatmapMax, sourceRange, tensorHeatmapOption } from './tensor-heatmap-option'

describe('tensor heatmap', () => {
  it('lays values out row-major as [column, row, value]', () => {
    const hm = { rows: 2, cols: 3, values: [1, 2, 3, 4, 5, 6], sourceShape: [2, 3] as [number, number] }
    expect(heatmapCells(hm)).toEqual([
      [0, 0, 1], [1, 0, 2], [2, 0, 3],
      [0, 1, 4], [1, 1, 5], [2, 1, 6],
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
    for (const [cells, source] of [[96, 172], [64, 64], [96, 11008], [7, 10], [3, 3]]) {
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

function cell(layer: number | null, role: TensorRole, score: number, name = `${layer}.${role}`): ScanCell {
  return { layer, role, name, absmax: 1, std: 0.1, kurtosis: 3, outlierChannels: 2, channels: 64, outlierScore: score }
}

describe('scan grid', () => {
  const result: ScanResult = {
    modelId: 'm',
    k: 6,
    seconds: 1,
    bytes: 1,
    cells: [
      cell(null, 'embed', 1.5, 'model.embed_tokens.weight'),
      cell(1, 'down', 4),
      cell(0, 'q', 2),
      cell(0, 'down', 3),
      cell(1, 'q', 5),
      cell(1, 'other', 1, 'first-other'),
      cell(1, 'other', 7, 'second-other'),
      cell(null, 'lm_head', 2.5, 'lm_head.weight'),
    ],
  }

  it('orders roles by data flow and layers numerically, leaving layer-less tensors aside', () => {
    const grid = scanGrid(result)
    expect(grid.roles).toEqual(['q', 'down', 'other'])
    expect(grid.layers).toEqual([0, 1])
    expect(grid.outside.map((c) => c.name)).toEqual(['model.embed_tokens.weight', 'lm_head.weight'])
    expect(scanCellAt(grid, 1, 0)!.name).toBe('0.down')
    expect(scanCellAt(grid, 0, 1)!.name).toBe('1.q')
    // Layer 0 has no 'other' tensor.
    expect(scanCellAt(grid, 2, 0)).toBeNull()
    expect(scanCellAt(grid, 9, 9)).toBeNull()
  })

  it('shows the highest-scoring tensor where a layer has several of one role', () => {
    expect(scanCellAt(scanGrid(result), 2, 1)!.name).toBe('second-other')
  })

  it('emits one heatmap point per filled cell, carrying its score', () => {
    const grid = scanGrid(result)
    const data = scanHeatmapData(grid)
    expect(data).toHaveLength(5)
    for (const [x, y, score] of data) expect(scanCellAt(grid, x, y)!.outlierScore).toBe(score)
    const option = scanOption(grid) as { visualMap: { min: number; max: number }; xAxis: { data: string[] } }
    expect(option.visualMap).toMatchObject({ min: 2, max: 7 })
    expect(option.xAxis.data).toEqual(['q', 'down', 'other'])
    // The colour bar says what it measures and in what unit.
    expect((option as unknown as { visualMap: { text: string[] } }).visualMap.text[0]).toMatch(/outlier score[\s\S]*log₂/)
  })

  it('escapes tensor names in the tooltip, which ECharts renders as HTML', () => {
    const html = describeScanCell(cell(0, 'q', 1, '<img src=x onerror=alert(1)>'))
    expect(html).not.toContain('<img')
    expect(html).toContain('&lt;img src=x onerror=alert(1)&gt;')
  })
})
