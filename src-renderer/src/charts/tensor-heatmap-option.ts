// The down-sampled |w| of a 2-D tensor: each cell is the max |w| over a block of the source matrix.

import type { TensorDetail } from '@contract/api'
import { formatValue } from '../lib/format'
import { CHART_COLORS, MONO_FONT } from './palette'
import type { ChartOption } from './types'

export type TensorHeatmap = NonNullable<TensorDetail['heatmap']>

/** Source indices [first, last] that cell `cell` of `cells` pools, when `source` is split evenly. */
export function sourceRange(cell: number, cells: number, source: number): [number, number] {
  const first = Math.ceil((cell * source) / cells)
  const last = Math.max(first, Math.ceil(((cell + 1) * source) / cells) - 1)
  return [first, Math.min(last, source - 1)]
}

/** [x = column, y = row, value] triples, the layout ECharts' heatmap takes. */
export function heatmapCells(hm: TensorHeatmap): [number, number, number][] {
  const cells: [number, number, number][] = []
  const n = Math.min(hm.values.length, hm.rows * hm.cols)
  for (let i = 0; i < n; i++) cells.push([i % hm.cols, Math.floor(i / hm.cols), hm.values[i]])
  return cells
}

/** Largest finite value, the top of the colour scale (1 when all are zero, so the scale is valid). */
export function heatmapMax(values: readonly number[]): number {
  let max = 0
  for (const v of values) if (Number.isFinite(v) && v > max) max = v
  return max > 0 ? max : 1
}

export function tensorHeatmapOption(hm: TensorHeatmap): ChartOption {
  const [srcRows, srcCols] = hm.sourceShape
  const range = (cell: number, cells: number, source: number): string => {
    const [a, b] = sourceRange(cell, cells, source)
    return a === b ? String(a) : `${a}–${b}`
  }
  return {
    animation: false,
    textStyle: { fontFamily: MONO_FONT, fontSize: 11, color: CHART_COLORS.text },
    grid: { left: 56, right: 100, top: 12, bottom: 40 },
    tooltip: {
      formatter: (params: unknown) => {
        const [c, r, v] = (params as { value: [number, number, number] }).value
        return `rows ${range(r, hm.rows, srcRows)}, cols ${range(c, hm.cols, srcCols)}<br/>max |w| ${formatValue(v)}`
      },
    },
    xAxis: {
      type: 'category',
      data: Array.from({ length: hm.cols }, (_, c) => String(sourceRange(c, hm.cols, srcCols)[0])),
      name: `in (${srcCols})`,
      nameLocation: 'middle',
      nameGap: 24,
      splitArea: { show: false },
    },
    yAxis: {
      type: 'category',
      inverse: true,
      data: Array.from({ length: hm.rows }, (_, r) => String(sourceRange(r, hm.rows, srcRows)[0])),
      name: `out (${srcRows})`,
      nameLocation: 'middle',
      nameGap: 40,
    },
    visualMap: {
      type: 'continuous',
      min: 0,
      max: heatmapMax(hm.values),
      calculable: true,
      orient: 'vertical',
      right: 8,
      top: 'middle',
      itemHeight: 160,
      formatter: (v: unknown) => formatValue(Number(v), 3),
      inRange: { color: [...CHART_COLORS.heat] },
    },
    series: [{ type: 'heatmap', name: '|w|', data: heatmapCells(hm), progressive: 0 }],
  }
}
