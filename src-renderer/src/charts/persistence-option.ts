// Outlier persistence across layers: a heatmap of activation absmax, one row per hidden-size input
// ("L0 qkv", "L0 gate_up", …) and one column per hidden channel, above a bar chart of how many of those
// inputs each channel is an outlier in. Both share one channel axis and one zoom, so a channel that is
// an outlier everywhere shows as a vertical stripe over a tall bar.

import type { ActivationReport } from '@contract/api'
import { escapeHtml } from '../lib/escape-html'
import { formatValue } from '../lib/format'
import { CHART_COLORS, MONO_FONT } from './palette'
import { heatmapMax, sourceRange } from './tensor-heatmap-option'
import type { ChartOption } from './types'

export interface PersistenceRow {
  layer: number
  group: 'qkv' | 'gate_up'
  label: string
  absmax: readonly number[]
}

/** Beyond this many channels, neighbouring channels are max-pooled into one column. */
export const PERSISTENCE_MAX_COLUMNS = 1024

/** The inputs that read the hidden state itself, in model order: per layer qkv, then gate_up. */
export function persistenceRows(report: ActivationReport): PersistenceRow[] {
  const rows: PersistenceRow[] = []
  for (const input of report.inputs) {
    if (input.group !== 'qkv' && input.group !== 'gate_up') continue
    rows.push({ layer: input.layer, group: input.group, label: `L${input.layer} ${input.group}`, absmax: input.absmax })
  }
  const groupRank = (g: PersistenceRow['group']): number => (g === 'qkv' ? 0 : 1)
  return rows.sort((a, b) => a.layer - b.layer || groupRank(a.group) - groupRank(b.group))
}

/** [first, last] source channels of each column when `channels` are shown in at most `maxColumns`. */
export function columnBlocks(channels: number, maxColumns: number): [number, number][] {
  const n = Math.max(0, Math.floor(channels))
  const columns = Math.min(n, Math.max(1, Math.floor(maxColumns)))
  return Array.from({ length: columns }, (_, c) => sourceRange(c, columns, n))
}

/** Largest finite value per block; NaN where a block has none (short rows, non-finite values). */
export function poolMax(values: readonly number[], blocks: readonly [number, number][]): number[] {
  return blocks.map(([first, last]) => {
    let max = Number.NaN
    for (let i = first; i <= last && i < values.length; i++) {
      const v = values[i]
      if (Number.isFinite(v) && (Number.isNaN(max) || v > max)) max = v
    }
    return max
  })
}

export interface PersistenceLayout {
  heatmapTop: number
  heatmapHeight: number
  barsTop: number
  barsHeight: number
  /** The whole chart's height in pixels. */
  height: number
}

const ROW_PX = 14
const BARS_PX = 90

/** Pixel layout for `rows` heatmap rows: rows stay readable, the chart stays on a screen. */
export function persistenceLayout(rows: number): PersistenceLayout {
  const heatmapTop = 10
  const heatmapHeight = Math.min(900, Math.max(120, rows * ROW_PX))
  const barsTop = heatmapTop + heatmapHeight + 16
  // Below the bars: channel labels, the axis name, and the zoom slider.
  return { heatmapTop, heatmapHeight, barsTop, barsHeight: BARS_PX, height: barsTop + BARS_PX + 66 }
}

function describeBlock([first, last]: [number, number]): string {
  return first === last ? `channel ${first}` : `channels ${first}–${last}`
}

export function persistenceOption(report: ActivationReport, maxColumns = PERSISTENCE_MAX_COLUMNS): ChartOption {
  const rows = persistenceRows(report)
  const blocks = columnBlocks(report.persistence.channels, maxColumns)
  const pooled = rows.map((r) => poolMax(r.absmax, blocks))
  const counts = poolMax(report.persistence.counts, blocks).map((c) => (Number.isFinite(c) ? c : 0))
  const cells: [number, number, number][] = []
  pooled.forEach((row, y) =>
    row.forEach((v, x) => {
      if (Number.isFinite(v)) cells.push([x, y, v])
    }),
  )
  const layout = persistenceLayout(rows.length)
  const columnLabels = blocks.map(([first]) => String(first))
  const pooledNote = blocks.length < report.persistence.channels ? ' (max over the block)' : ''
  const grid = { left: 84, right: 100 }
  return {
    animation: false,
    textStyle: { fontFamily: MONO_FONT, fontSize: 11, color: CHART_COLORS.text },
    grid: [
      { ...grid, top: layout.heatmapTop, height: layout.heatmapHeight },
      { ...grid, top: layout.barsTop, height: layout.barsHeight },
    ],
    tooltip: {
      formatter: (params: unknown) => {
        const p = params as { seriesIndex: number; value: unknown; dataIndex: number }
        if (p.seriesIndex === 0) {
          const [x, y, v] = p.value as [number, number, number]
          const row = rows[y]
          if (!row || !blocks[x]) return ''
          return `<b>${escapeHtml(row.label)}</b> · ${describeBlock(blocks[x])}<br/>absmax ${formatValue(v)}${pooledNote}`
        }
        const block = blocks[p.dataIndex]
        if (!block) return ''
        return `${describeBlock(block)}<br/>outlier in ${formatValue(Number(p.value))} of ${report.persistence.inputs} inputs${pooledNote}`
      },
    },
    xAxis: [
      { type: 'category', gridIndex: 0, data: columnLabels, axisLabel: { show: false }, axisTick: { show: false } },
      {
        type: 'category',
        gridIndex: 1,
        data: columnLabels,
        name: 'hidden channel',
        nameLocation: 'middle',
        nameGap: 26,
        axisLine: { lineStyle: { color: CHART_COLORS.axis } },
      },
    ],
    yAxis: [
      {
        type: 'category',
        gridIndex: 0,
        inverse: true,
        data: rows.map((r) => r.label),
        // Every row is a different input: never let ECharts skip labels to save space.
        axisLabel: { interval: rows.length * ROW_PX <= layout.heatmapHeight ? 0 : 'auto', fontSize: 10 },
      },
      {
        type: 'value',
        gridIndex: 1,
        name: 'outlier in',
        nameLocation: 'middle',
        nameRotate: 90,
        nameGap: 28,
        min: 0,
        max: Math.max(1, report.persistence.inputs),
        minInterval: 1,
        splitLine: { lineStyle: { color: CHART_COLORS.grid } },
      },
    ],
    dataZoom: [
      { type: 'inside', xAxisIndex: [0, 1] },
      { type: 'slider', xAxisIndex: [0, 1], height: 16, bottom: 6 },
    ],
    visualMap: {
      type: 'continuous',
      seriesIndex: 0,
      min: 0,
      max: heatmapMax(cells.map((c) => c[2])),
      calculable: true,
      orient: 'vertical',
      right: 8,
      top: layout.heatmapTop,
      itemHeight: Math.min(160, layout.heatmapHeight - 40),
      formatter: (v: unknown) => formatValue(Number(v), 3),
      inRange: { color: [...CHART_COLORS.heat] },
    },
    series: [
      { type: 'heatmap', name: '|x| max', xAxisIndex: 0, yAxisIndex: 0, data: cells, progressive: 0 },
      {
        type: 'bar',
        name: 'outlier count',
        xAxisIndex: 1,
        yAxisIndex: 1,
        data: counts,
        barCategoryGap: '10%',
        itemStyle: { color: CHART_COLORS.outlier },
      },
    ],
  }
}

/** Channels that are outliers in at least one hidden-size input: most persistent first. */
export function persistentChannels(report: ActivationReport): { channel: number; count: number }[] {
  return report.persistence.counts
    .map((count, channel) => ({ channel, count }))
    .filter((c) => c.count > 0)
    .sort((a, b) => b.count - a.count || a.channel - b.channel)
}
