// Attention-head importance as a layers × heads heatmap (one per measure). A measure that goes below
// zero (ablation: removing the head helped) gets a diverging scale centred on zero; a non-negative one a
// single warm hue. The selected head is outlined.

import { formatValue } from '../lib/format'
import { CHART_COLORS, MONO_FONT } from './palette'
import type { ChartOption } from './types'

export interface HeadRef {
  layer: number
  head: number
}

export interface HeadCell {
  /** [head, layer, value]: x = head, y = layer. */
  value: [number, number, number]
  itemStyle?: { borderColor: string; borderWidth: number }
}

/** Cells that outline the selected head get this style. */
const SELECTED_STYLE = { borderColor: '#212529', borderWidth: 2 } as const
/** Heads marked for pruning. */
const MARKED_STYLE = { borderColor: '#e8590c', borderWidth: 3 } as const

/** "layer:head", the key of a head marked for pruning. */
export const headKey = (h: HeadRef): string => `${h.layer}:${h.head}`

/** One cell per finite value of `matrix[layer][head]`. */
export function headCells(
  matrix: readonly (readonly number[])[],
  selected: HeadRef | null,
  marked: readonly string[] = [],
): HeadCell[] {
  const cells: HeadCell[] = []
  matrix.forEach((row, layer) =>
    row.forEach((v, head) => {
      if (!Number.isFinite(v)) return
      const cell: HeadCell = { value: [head, layer, v] }
      if (marked.includes(headKey({ layer, head }))) cell.itemStyle = { ...MARKED_STYLE }
      if (selected && selected.layer === layer && selected.head === head) cell.itemStyle = { ...SELECTED_STYLE }
      cells.push(cell)
    }),
  )
  return cells
}

export interface ColourScale {
  min: number
  max: number
  colors: readonly string[]
}

/**
 * Non-negative values: [0, max] in the warm palette. Any negative value: symmetric [-m, m] in the
 * diverging palette, so zero sits at the neutral middle and signs read at a glance.
 */
export function colourScale(values: readonly number[]): ColourScale {
  let min = 0
  let max = 0
  for (const v of values) {
    if (!Number.isFinite(v)) continue
    if (v < min) min = v
    if (v > max) max = v
  }
  if (min < 0) {
    const m = Math.max(-min, max)
    return { min: -m, max: m, colors: CHART_COLORS.diverging }
  }
  return { min: 0, max: max > 0 ? max : 1, colors: CHART_COLORS.score }
}

/** Cell labels only while cells are large enough to hold them. */
const MAX_LABELLED_CELLS = 256

export function headHeatmapOption(
  matrix: readonly (readonly number[])[],
  measure: string,
  selected: HeadRef | null,
  marked: readonly string[] = [],
): ChartOption {
  const layers = matrix.length
  const heads = matrix.reduce((n, row) => Math.max(n, row.length), 0)
  const cells = headCells(matrix, selected, marked)
  const scale = colourScale(cells.map((c) => c.value[2]))
  return {
    animation: false,
    textStyle: { fontFamily: MONO_FONT, fontSize: 11, color: CHART_COLORS.text },
    grid: { left: 48, right: 100, top: 10, bottom: 40 },
    tooltip: {
      formatter: (params: unknown) => {
        const [h, l, v] = (params as { value: [number, number, number] }).value
        return `layer ${l}, head ${h}<br/>${measure} ${formatValue(v)}<br/><span style="opacity:.7">click for its weights</span>`
      },
    },
    xAxis: {
      type: 'category',
      data: Array.from({ length: heads }, (_, h) => String(h)),
      name: 'head',
      nameLocation: 'middle',
      nameGap: 24,
      axisLabel: { interval: heads <= 32 ? 0 : 'auto' },
    },
    yAxis: {
      type: 'category',
      inverse: true,
      data: Array.from({ length: layers }, (_, l) => `L${l}`),
      name: 'layer',
      nameLocation: 'middle',
      nameGap: 34,
    },
    visualMap: {
      type: 'continuous',
      min: scale.min,
      max: scale.max,
      calculable: true,
      orient: 'vertical',
      right: 4,
      top: 'middle',
      itemHeight: 120,
      formatter: (v: unknown) => formatValue(Number(v), 2),
      inRange: { color: [...scale.colors] },
    },
    series: [
      {
        type: 'heatmap',
        name: measure,
        data: cells,
        label: {
          show: cells.length <= MAX_LABELLED_CELLS,
          formatter: (p: unknown) => formatValue((p as { value: number[] }).value[2], 2),
          fontSize: 9,
        },
        itemStyle: { borderColor: '#fff', borderWidth: 1 },
        emphasis: { itemStyle: { borderColor: CHART_COLORS.text, borderWidth: 1 } },
        progressive: 0,
      },
    ],
  }
}

/** The head a heatmap click landed on, or null when the click carried no cell. */
export function headFromClick(params: { value?: unknown }): HeadRef | null {
  const v = params.value
  if (!Array.isArray(v) || v.length < 2) return null
  const head = Number(v[0])
  const layer = Number(v[1])
  return Number.isInteger(head) && Number.isInteger(layer) && head >= 0 && layer >= 0 ? { layer, head } : null
}
