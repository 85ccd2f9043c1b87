// The model overview: a layers × roles grid of outlier scores from a whole-model scan.

import type { ScanCell, ScanResult, TensorRole } from '@contract/api'
import { escapeHtml } from '../lib/escape-html'
import { formatValue } from '../lib/format'
import { CHART_COLORS, MONO_FONT } from './palette'
import type { ChartOption } from './types'

/** Column order: the order data flows through a block, so neighbouring columns are related. */
export const ROLE_ORDER: readonly TensorRole[] = [
  'embed',
  'pos_embed',
  'attn_norm',
  'q',
  'k',
  'v',
  'qkv',
  'o',
  'ffn_norm',
  'gate',
  'up',
  'down',
  'fc1',
  'fc2',
  'final_norm',
  'lm_head',
  'other',
]

export interface ScanGrid {
  /** Roles present in the layered cells, in ROLE_ORDER. */
  roles: TensorRole[]
  /** Layer indices present, ascending. */
  layers: number[]
  /** cells[layerIndex][roleIndex]; null where that layer has no tensor of that role. */
  cells: (ScanCell | null)[][]
  /** Cells of tensors outside the blocks (layer null). */
  outside: ScanCell[]
}

/**
 * Arranges scan cells as a grid. Where one layer has several tensors of a role (e.g. two 'other'
 * tensors), the cell shows the one with the highest outlier score, the one worth looking at.
 */
export function scanGrid(result: ScanResult): ScanGrid {
  const layered = result.cells.filter((c) => c.layer !== null)
  const outside = result.cells.filter((c) => c.layer === null)
  const rank = (r: TensorRole): number => {
    const i = ROLE_ORDER.indexOf(r)
    return i < 0 ? ROLE_ORDER.length : i
  }
  const roles = [...new Set(layered.map((c) => c.role))].sort((a, b) => rank(a) - rank(b))
  const layers = [...new Set(layered.map((c) => c.layer as number))].sort((a, b) => a - b)
  const roleIndex = new Map(roles.map((r, i) => [r, i]))
  const layerIndex = new Map(layers.map((l, i) => [l, i]))
  const cells: (ScanCell | null)[][] = layers.map(() => roles.map(() => null))
  for (const c of layered) {
    const y = layerIndex.get(c.layer as number)!
    const x = roleIndex.get(c.role)!
    const held = cells[y][x]
    if (!held || scoreOf(c) > scoreOf(held)) cells[y][x] = c
  }
  return { roles, layers, cells, outside }
}

/** Non-finite scores (a tensor full of zeros) sort and colour as the lowest. */
function scoreOf(c: ScanCell): number {
  return Number.isFinite(c.outlierScore) ? c.outlierScore : -Infinity
}

export function scanCellAt(grid: ScanGrid, x: number, y: number): ScanCell | null {
  return grid.cells[y]?.[x] ?? null
}

/** [x = role index, y = layer index, score] for every filled cell. */
export function scanHeatmapData(grid: ScanGrid): [number, number, number][] {
  const data: [number, number, number][] = []
  grid.cells.forEach((row, y) =>
    row.forEach((cell, x) => {
      if (cell && Number.isFinite(cell.outlierScore)) data.push([x, y, cell.outlierScore])
    }),
  )
  return data
}

export function describeScanCell(c: ScanCell): string {
  return [
    `<b>${escapeHtml(c.name)}</b>`,
    `score ${formatValue(c.outlierScore)}`,
    `absmax ${formatValue(c.absmax)}`,
    `std ${formatValue(c.std)}`,
    `kurtosis ${formatValue(c.kurtosis)}`,
    `outlier channels ${c.outlierChannels} / ${c.channels}`,
  ].join('<br/>')
}

/** How a cell picked as a compression target is drawn: a thick dark frame over its colour. */
export const MARKED_CELL_STYLE = { borderColor: '#212529', borderWidth: 3 } as const

/**
 * The heatmap's data, with the cells of `marked` tensor names framed (the Compress tab's targets
 * while it is selecting by clicking).
 */
export function scanSeriesData(
  grid: ScanGrid,
  marked?: ReadonlySet<string>,
): ([number, number, number] | { value: [number, number, number]; itemStyle: typeof MARKED_CELL_STYLE })[] {
  const data = scanHeatmapData(grid)
  if (!marked || marked.size === 0) return data
  return data.map((d) => (marked.has(grid.cells[d[1]][d[0]]!.name) ? { value: d, itemStyle: MARKED_CELL_STYLE } : d))
}

/** What the overview's colour measures, as its colour bar says it. */
export const SCAN_METRIC_LABEL = 'outlier score\nlog₂(worst ÷ median\nchannel absmax)'

export function scanOption(grid: ScanGrid, marked?: ReadonlySet<string>): ChartOption {
  const data = scanHeatmapData(grid)
  let min = Infinity
  let max = -Infinity
  for (const d of data) {
    min = Math.min(min, d[2])
    max = Math.max(max, d[2])
  }
  if (!data.length) [min, max] = [0, 1]
  return {
    animation: false,
    textStyle: { fontFamily: MONO_FONT, fontSize: 11, color: CHART_COLORS.text },
    grid: { left: 64, right: 120, top: 40, bottom: grid.roles.length > 10 ? 64 : 40 },
    tooltip: {
      formatter: (params: unknown) => {
        const [x, y] = (params as { value: [number, number, number] }).value
        const cell = scanCellAt(grid, x, y)
        return cell ? describeScanCell(cell) : ''
      },
    },
    xAxis: {
      type: 'category',
      data: [...grid.roles],
      name: 'role',
      nameLocation: 'middle',
      nameGap: 30,
      // Every column is a different role: never let ECharts skip labels to save space.
      axisLabel: { interval: 0, rotate: grid.roles.length > 10 ? 30 : 0 },
    },
    yAxis: {
      type: 'category',
      inverse: true,
      data: grid.layers.map((l) => `L${l}`),
      name: 'layer',
      nameLocation: 'middle',
      nameGap: 44,
    },
    visualMap: {
      type: 'continuous',
      min,
      max: max > min ? max : min + 1,
      calculable: true,
      orient: 'vertical',
      right: 8,
      top: 'middle',
      itemHeight: 160,
      // The colour bar names its metric and unit: each step of 1 is a doubling of worst over median.
      text: [SCAN_METRIC_LABEL, ''],
      textGap: 6,
      formatter: (v: unknown) => formatValue(Number(v), 3),
      inRange: { color: [...CHART_COLORS.score] },
    },
    series: [
      {
        type: 'heatmap',
        name: 'outlier score',
        data: scanSeriesData(grid, marked),
        label: {
          show: grid.roles.length * grid.layers.length <= 400,
          formatter: (p: unknown) => formatValue((p as { value: number[] }).value[2], 2),
          fontSize: 10,
        },
        itemStyle: { borderColor: '#fff', borderWidth: 1 },
        emphasis: { itemStyle: { borderColor: CHART_COLORS.text, borderWidth: 1 } },
        progressive: 0,
      },
    ],
  }
}
