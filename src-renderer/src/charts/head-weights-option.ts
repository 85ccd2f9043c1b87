// One slice of an attention head's weights (its q/k/v rows or its o_proj columns), max-pooled by
// magnitude with the sign kept, on a diverging scale symmetric around zero.

import type { HeadWeights } from '@contract/api'
import { formatValue } from '../lib/format'
import { CHART_COLORS, MONO_FONT } from './palette'
import { heatmapCells, sourceRange } from './tensor-heatmap-option'
import type { ChartOption } from './types'

export type HeadSlice = HeadWeights['slices'][number]

/** Largest finite |v| (1 when all are zero, so the scale stays valid). */
export function symmetricMax(values: readonly number[]): number {
  let m = 0
  for (const v of values) if (Number.isFinite(v) && Math.abs(v) > m) m = Math.abs(v)
  return m > 0 ? m : 1
}

/** Axis names: q/k/v slices are the head's rows [headDim, hidden]; o is its columns [hidden, headDim]. */
export function sliceAxes(slice: HeadSlice): { rows: string; cols: string } {
  const [r, c] = slice.sourceShape
  return slice.role === 'o'
    ? { rows: `out (${r})`, cols: `head dim (${c})` }
    : { rows: `head dim (${r})`, cols: `in (${c})` }
}

export function headSliceOption(slice: HeadSlice): ChartOption {
  const [srcRows, srcCols] = slice.sourceShape
  const m = symmetricMax(slice.values)
  const axes = sliceAxes(slice)
  const range = (cell: number, cells: number, source: number): string => {
    const [a, b] = sourceRange(cell, cells, source)
    return a === b ? String(a) : `${a}–${b}`
  }
  return {
    animation: false,
    textStyle: { fontFamily: MONO_FONT, fontSize: 10, color: CHART_COLORS.text },
    grid: { left: 44, right: 64, top: 8, bottom: 34 },
    tooltip: {
      formatter: (params: unknown) => {
        const [c, r, v] = (params as { value: [number, number, number] }).value
        return `${slice.role}: rows ${range(r, slice.rows, srcRows)}, cols ${range(c, slice.cols, srcCols)}<br/>w ${formatValue(v)}`
      },
    },
    xAxis: {
      type: 'category',
      data: Array.from({ length: slice.cols }, (_, c) => String(sourceRange(c, slice.cols, srcCols)[0])),
      name: axes.cols,
      nameLocation: 'middle',
      nameGap: 20,
    },
    yAxis: {
      type: 'category',
      inverse: true,
      data: Array.from({ length: slice.rows }, (_, r) => String(sourceRange(r, slice.rows, srcRows)[0])),
      name: axes.rows,
      nameLocation: 'middle',
      nameGap: 30,
    },
    visualMap: {
      type: 'continuous',
      min: -m,
      max: m,
      calculable: false,
      orient: 'vertical',
      right: 2,
      top: 'middle',
      itemHeight: 70,
      itemWidth: 10,
      formatter: (v: unknown) => formatValue(Number(v), 2),
      inRange: { color: [...CHART_COLORS.diverging] },
    },
    series: [{ type: 'heatmap', name: `${slice.role} weights`, data: heatmapCells(slice), progressive: 0 }],
  }
}
