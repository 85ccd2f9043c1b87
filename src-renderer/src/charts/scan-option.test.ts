import { describe, expect, it } from 'vitest'
import type { ScanCell, ScanResult, TensorRole } from '@contract/api'
import {
  describeScanCell,
  scanCellAt,
  scanGrid,
  scanHeatmapData,
  scanOption,
  MARKED_CELL_STYLE,
  scanSeriesData,
} from './scan-option'

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
    expect((option as unknown as { visualMap: { text: string[] } }).visualMap.text[0]).toMatch(
      /outlier score[\s\S]*log₂/,
    )
  })

  it('escapes tensor names in the tooltip, which ECharts renders as HTML', () => {
    const html = describeScanCell(cell(0, 'q', 1, '<img src=x onerror=alert(1)>'))
    expect(html).not.toContain('<img')
    expect(html).toContain('&lt;img src=x onerror=alert(1)&gt;')
  })
})

describe('scan heatmap in select mode', () => {
  const cell = (layer: number, role: ScanCell['role'], score: number): ScanCell => ({
    layer,
    role,
    name: `layers.${layer}.${role}.weight`,
    absmax: 1,
    std: 1,
    kurtosis: 3,
    outlierChannels: 0,
    channels: 8,
    outlierScore: score,
  })
  const result: ScanResult = {
    modelId: 'm',
    k: 6,
    seconds: 1,
    bytes: 1,
    cells: [cell(0, 'q', 1), cell(0, 'k', 2), cell(1, 'q', 3)],
  }

  it('frames exactly the cells of the marked tensors', () => {
    const grid = scanGrid(result)
    const data = scanSeriesData(grid, new Set(['layers.1.q.weight', 'not-in-the-grid']))
    expect(data).toEqual([[0, 0, 1], [1, 0, 2], { value: [0, 1, 3], itemStyle: MARKED_CELL_STYLE }])
    expect(scanSeriesData(grid, new Set())).toEqual([
      [0, 0, 1],
      [1, 0, 2],
      [0, 1, 3],
    ])
    const option = scanOption(grid, new Set(['layers.0.k.weight'])) as { series: { data: unknown[] }[] }
    expect(option.series[0].data[1]).toEqual({ value: [1, 0, 2], itemStyle: MARKED_CELL_STYLE })
  })
})
