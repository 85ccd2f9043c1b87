// The Structure view's two pictures:
// - what each block keeps, as bars of kept/original per block for the residual width (SliceGPT), the
//   heads and the MLP neurons, with the counts in the tooltip;
// - perplexity against parameter count, one line per structural method, so methods are compared at
//   equal size; the picked point is ringed (it is the one Export writes).

import type { BlockShape } from '@contract/api'
import type { StructureSeries } from '../lib/structure-recipe'
import { formatValue } from '../lib/format'
import { CHART_COLORS, MONO_FONT } from './palette'
import type { ChartOption } from './types'

/** The widths a block keeps, as the bars name them, in drawing order. */
export const BLOCK_WIDTHS = [
  { key: 'hidden', label: 'hidden dims' },
  { key: 'heads', label: 'heads' },
  { key: 'intermediate', label: 'MLP neurons' },
] as const satisfies readonly { key: keyof BlockShape; label: string }[]

/** Kept / original in percent (100 when there was nothing to keep). */
export function keptPercent([before, after]: [number, number]): number {
  return before > 0 ? (100 * after) / before : 100
}

const SERIES_COLORS = [CHART_COLORS.bar, CHART_COLORS.outlier, CHART_COLORS.negative, '#7048e8', '#f08c00', '#1098ad']

export function blockBarsOption(blocks: readonly BlockShape[]): ChartOption {
  return {
    animation: false,
    textStyle: { fontFamily: MONO_FONT, fontSize: 11, color: CHART_COLORS.text },
    grid: { left: 56, right: 16, top: 36, bottom: 44 },
    legend: { top: 0, data: BLOCK_WIDTHS.map((w) => w.label) },
    tooltip: {
      trigger: 'axis',
      axisPointer: { type: 'shadow' },
      formatter: (params: unknown) => {
        const first = (Array.isArray(params) ? params[0] : params) as { dataIndex: number }
        const b = blocks[first.dataIndex]
        if (!b) return ''
        const rows = BLOCK_WIDTHS.map((w) => `${w.label} ${b[w.key][1]} / ${b[w.key][0]}`)
        return [`block ${b.layer}`, ...rows, `kv heads ${b.kvHeads[1]} / ${b.kvHeads[0]}`].join('<br/>')
      },
    },
    xAxis: {
      type: 'category',
      data: blocks.map((b) => String(b.layer)),
      name: 'block',
      nameLocation: 'middle',
      nameGap: 26,
      axisLine: { lineStyle: { color: CHART_COLORS.axis } },
    },
    yAxis: {
      type: 'value',
      name: 'kept %',
      min: 0,
      max: 100,
      splitLine: { lineStyle: { color: CHART_COLORS.grid } },
    },
    series: BLOCK_WIDTHS.map((w, i) => ({
      type: 'bar',
      name: w.label,
      data: blocks.map((b) => keptPercent(b[w.key])),
      itemStyle: { color: SERIES_COLORS[i] },
      barGap: '10%',
    })),
  }
}

export function structureSweepOption(series: readonly StructureSeries[], picked: string | null): ChartOption {
  return {
    animation: false,
    textStyle: { fontFamily: MONO_FONT, fontSize: 11, color: CHART_COLORS.text },
    grid: { left: 64, right: 24, top: 36, bottom: 48 },
    legend: { top: 0, data: series.map((s) => s.method) },
    tooltip: {
      trigger: 'item',
      formatter: (p: unknown) => {
        const { seriesIndex, dataIndex } = p as { seriesIndex: number; dataIndex: number }
        const point = series[seriesIndex]?.points[dataIndex]
        if (!point) return ''
        return `${point.label}<br/>parameters ${formatValue(point.paramsAfter)}<br/>perplexity ${formatValue(point.pplAfter ?? NaN)}`
      },
    },
    xAxis: {
      type: 'value',
      name: 'parameters',
      nameLocation: 'middle',
      nameGap: 28,
      scale: true,
      splitLine: { lineStyle: { color: CHART_COLORS.grid } },
    },
    yAxis: { type: 'value', name: 'perplexity', scale: true, splitLine: { lineStyle: { color: CHART_COLORS.grid } } },
    series: series.map((s, i) => ({
      type: 'line',
      name: s.method,
      symbolSize: 9,
      lineStyle: { color: SERIES_COLORS[i % SERIES_COLORS.length] },
      itemStyle: { color: SERIES_COLORS[i % SERIES_COLORS.length] },
      data: s.points.map((p) => ({
        value: [p.paramsAfter, p.pplAfter],
        id: p.id,
        ...(p.id === picked ? { symbolSize: 16, itemStyle: { borderColor: '#212529', borderWidth: 2 } } : {}),
      })),
    })),
  }
}
