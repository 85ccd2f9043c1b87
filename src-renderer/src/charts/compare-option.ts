// The Compare chart: every result of one model as a point (size against perplexity), the Pareto
// frontier as a line through the points nothing beats, and the source model's perplexity as a
// reference line. Hovering names the recipe; a click selects the point (data carries its id).

import type { ResultPoint } from '@contract/api'
import { formatBytes } from '@contract/units'
import { coordinates, paretoFrontier, type SizeAxis } from '../lib/compare-points'
import { CHART_COLORS, MONO_FONT } from './palette'
import type { ChartOption } from './types'

function escape(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
}

export const COMPARE_SERIES = { points: 'results', frontier: 'Pareto frontier' } as const

export function compareOption(
  points: readonly ResultPoint[],
  axis: SizeAxis,
  selected: ReadonlySet<string>,
): ChartOption {
  const placed = points.filter((p) => coordinates(p, axis) !== null)
  const frontier = paretoFrontier(placed, axis)
  const onFrontier = new Set(frontier.map((p) => p.id))
  const base = placed.find((p) => p.pplBefore !== null)?.pplBefore ?? null
  const xName = axis === 'bitsPerWeight' ? 'bits per compressed weight' : 'size, stored compactly'
  return {
    animation: false,
    textStyle: { fontFamily: MONO_FONT, fontSize: 11, color: CHART_COLORS.text },
    grid: { left: 64, right: 24, top: 30, bottom: 48 },
    legend: { top: 0, right: 8, data: [COMPARE_SERIES.points, COMPARE_SERIES.frontier] },
    tooltip: {
      trigger: 'item',
      formatter: (params: unknown) => {
        const id = (params as { data?: { id?: string } }).data?.id
        const p = placed.find((q) => q.id === id)
        if (!p) return ''
        return [
          `<b>${escape(p.label)}</b>`,
          `perplexity ${p.pplAfter!.toFixed(4)} (before ${p.pplBefore === null ? '—' : p.pplBefore.toFixed(4)})`,
          `${p.bitsPerWeight.toFixed(3)} bits/weight · ${formatBytes(p.bytesAfter)}`,
          onFrontier.has(p.id) ? 'on the Pareto frontier' : '',
          escape(p.at.replace('T', ' ').slice(0, 19)),
        ]
          .filter(Boolean)
          .join('<br/>')
      },
    },
    xAxis: {
      type: 'value',
      name: xName,
      nameLocation: 'middle',
      nameGap: 28,
      scale: true,
      axisLabel: { formatter: (v: number) => (axis === 'bytesAfter' ? formatBytes(v) : String(v)) },
      splitLine: { lineStyle: { color: CHART_COLORS.grid } },
    },
    yAxis: {
      type: 'value',
      name: 'perplexity after',
      nameLocation: 'middle',
      nameGap: 48,
      nameRotate: 90,
      scale: true,
      splitLine: { lineStyle: { color: CHART_COLORS.grid } },
    },
    series: [
      {
        type: 'scatter',
        name: COMPARE_SERIES.points,
        symbolSize: 10,
        data: placed.map((p) => ({
          id: p.id,
          value: coordinates(p, axis)!,
          itemStyle: selected.has(p.id)
            ? { color: CHART_COLORS.outlier, borderColor: '#212529', borderWidth: 2 }
            : { color: CHART_COLORS.bar },
        })),
        ...(base !== null
          ? {
              markLine: {
                symbol: 'none',
                silent: true,
                label: { formatter: `before ${base.toFixed(4)}` },
                lineStyle: { color: CHART_COLORS.markLine, type: 'dashed' },
                data: [{ yAxis: base }],
              },
            }
          : {}),
      },
      {
        type: 'line',
        name: COMPARE_SERIES.frontier,
        data: frontier.map((p) => ({ id: p.id, value: coordinates(p, axis)! })),
        lineStyle: { color: CHART_COLORS.pair[1], width: 1.5 },
        itemStyle: { color: CHART_COLORS.pair[1] },
        symbol: 'none',
        silent: true,
      },
    ],
  }
}
