// The storage panel's pieces: the facts of a packed Linear or GGUF block type, the charts it draws (integer
// code and zero-point counts, scale histograms), and the bar chart of counts per integer code.

import type { Histogram, TensorStorage } from '@contract/api'
import { formatBytes, formatInteger, formatShape, formatValue } from '../lib/format'
import { histogramAxes, histogramOption } from './histogram-option'
import { CHART_COLORS, MONO_FONT } from './palette'
import type { ChartOption } from './types'

/** One chart of the panel: counts per integer code, or a histogram of scale values. */
export type StorageChart =
  | { id: string; title: string; kind: 'codes'; counts: number[] }
  | { id: string; title: string; kind: 'values'; histogram: Histogram }

const yesNo = (b: boolean): string => (b ? 'yes' : 'no')

/** Label / value rows describing the storage. */
export function storageFacts(s: TensorStorage): [string, string][] {
  if (s.kind === 'packed-linear') {
    return [
      ['scheme', s.scheme === 'gptq' ? 'GPTQ' : 'compressed-tensors'],
      ['bits', String(s.bits)],
      ['group size', s.groupSize > 0 ? String(s.groupSize) : 'per channel'],
      ['groups per row', formatInteger(s.groups)],
      ['act-order', yesNo(s.actOrder)],
      ['symmetric', yesNo(s.symmetric)],
      ['stored bits / weight', formatValue(s.bitsPerWeight, 4)],
    ]
  }
  return [
    ['type', s.type],
    ['block size', `${s.blockElements} weights`],
    ['block bytes', String(s.blockBytes)],
    ['blocks', formatInteger(s.blocks)],
    ['stored bits / weight', formatValue(s.bitsPerWeight, 4)],
  ]
}

/** The packed parts as table rows: name, role, dtype, shape, size. */
export function storagePartRows(s: TensorStorage): string[][] {
  if (s.kind !== 'packed-linear') return []
  return s.parts.map((p) => [p.name, p.role, p.dtype, formatShape(p.shape), formatBytes(p.byteLength)])
}

/** The charts to draw, in order. */
export function storageCharts(s: TensorStorage): StorageChart[] {
  if (s.kind === 'packed-linear') {
    const charts: StorageChart[] = [
      { id: 'codes', title: `integer codes (0 … ${2 ** s.bits - 1})`, kind: 'codes', counts: s.codes },
      { id: 'scales', title: 'scales', kind: 'values', histogram: s.scales },
    ]
    if (s.zeros) charts.push({ id: 'zeros', title: 'zero points', kind: 'codes', counts: s.zeros })
    return charts
  }
  return s.scales.map((f) => ({
    id: `block-${f.field}`,
    title: `${f.field}: the ${f.field === 'd' ? 'scale' : 'min scale'} of each block`,
    kind: 'values' as const,
    histogram: f.histogram,
  }))
}

/** Counts per integer code q = 0 … n − 1, one bar each, on a linear or log count axis. */
export function codeCountsOption(counts: number[], logScale: boolean): ChartOption {
  const axes = histogramAxes(
    counts.map((_, q) => q),
    logScale,
  )
  const total = counts.reduce((a, b) => a + b, 0)
  return {
    animation: false,
    textStyle: { fontFamily: MONO_FONT, fontSize: 11, color: CHART_COLORS.text },
    grid: { left: 64, right: 16, top: 16, bottom: 64 },
    tooltip: {
      trigger: 'axis',
      axisPointer: { type: 'shadow' },
      formatter: (params: unknown) => {
        const first = (Array.isArray(params) ? params[0] : params) as { dataIndex: number }
        const n = counts[first.dataIndex]
        if (n === undefined) return ''
        const share = total > 0 ? ` (${formatValue((100 * n) / total, 3)}%)` : ''
        return `code ${first.dataIndex}<br/>count ${formatInteger(n)}${share}`
      },
    },
    xAxis: { ...axes.xAxis, data: counts.map((_, q) => String(q)), name: 'code' },
    yAxis: axes.yAxis,
    dataZoom: axes.dataZoom,
    series: [
      {
        type: 'bar',
        name: 'count',
        data: counts.map((c) => (logScale && c <= 0 ? null : c)),
        barCategoryGap: '8%',
        itemStyle: { color: CHART_COLORS.bar },
      },
    ],
  }
}

/** The option of one storage chart. */
export function storageChartOption(chart: StorageChart, logScale: boolean): ChartOption {
  return chart.kind === 'codes' ? codeCountsOption(chart.counts, logScale) : histogramOption(chart.histogram, logScale)
}
