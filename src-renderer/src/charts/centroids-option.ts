// A lookup-table quantizer's centroids (SqueezeLLM: one row's table; GOBO: the tensor's one table) as
// vertical marks on the tensor's value histogram, beside the uniform grid with as many levels between the
// same extremes (dashed). Where the weights are dense the learned marks crowd together; the uniform ones
// stay evenly spaced over the sparse tails. A value axis, not the histogram's category axis, so the marks
// stand at their exact values.

import type { Histogram } from '@contract/api'
import { uniformLike } from '../lib/learned-grid'
import { formatInteger, formatValue } from '../lib/format'
import { histogramBins, LOG_AXIS_MIN } from './histogram-option'
import { CHART_COLORS, MONO_FONT } from './palette'
import type { ChartOption } from './types'

export const CENTROID_SERIES = {
  histogram: 'weights',
  learned: 'learned centroids',
  /** As many levels as the table, evenly spaced between its extremes. */
  uniform: 'uniform grid',
} as const

/** The value range drawn: the histogram's and every mark's, with a little room either side. */
export function centroidsAxisRange(centroids: readonly number[], histogram: Histogram | null): [number, number] {
  const xs = [...centroids, ...(histogram ? [histogram.lo, histogram.hi] : [])]
  if (xs.length === 0) return [-1, 1]
  const lo = Math.min(...xs),
    hi = Math.max(...xs)
  const pad = hi > lo ? 0.02 * (hi - lo) : Math.max(1e-6, Math.abs(lo) * 0.1)
  return [lo - pad, hi + pad]
}

function marks(values: readonly number[], color: string, type: 'solid' | 'dashed', width: number) {
  return {
    symbol: 'none' as const,
    silent: true,
    animation: false,
    label: { show: false },
    lineStyle: { color, type, width, opacity: 0.9 },
    data: values.map((x) => ({ xAxis: x })),
  }
}

export function centroidsOption(
  centroids: readonly number[],
  histogram: Histogram | null,
  logScale: boolean,
): ChartOption {
  const [min, max] = centroidsAxisRange(centroids, histogram)
  const bins = histogram ? histogramBins(histogram) : []
  return {
    animation: false,
    textStyle: { fontFamily: MONO_FONT, fontSize: 11, color: CHART_COLORS.text },
    grid: { left: 64, right: 16, top: 30, bottom: 64 },
    legend: { top: 0, right: 8, data: Object.values(CENTROID_SERIES) },
    tooltip: {
      trigger: 'axis',
      formatter: (params: unknown) => {
        const first = (Array.isArray(params) ? params[0] : params) as { dataIndex?: number } | undefined
        const bin = first?.dataIndex === undefined ? undefined : bins[first.dataIndex]
        if (!bin) return ''
        return `[${formatValue(bin.lo)}, ${formatValue(bin.hi)})<br/>count ${formatInteger(bin.count)}`
      },
    },
    xAxis: {
      type: 'value',
      min,
      max,
      name: 'weight value',
      nameLocation: 'middle',
      nameGap: 26,
      axisLine: { lineStyle: { color: CHART_COLORS.axis } },
      axisLabel: { formatter: (v: number) => formatValue(v, 3) },
      splitLine: { show: false },
    },
    yAxis: logScale
      ? {
          type: 'log',
          logBase: 10,
          min: LOG_AXIS_MIN,
          name: 'count (log)',
          nameLocation: 'middle',
          nameGap: 48,
          // At the left edge, not at weight 0 where it would read as one more mark.
          axisLine: { onZero: false },
          splitLine: { lineStyle: { color: CHART_COLORS.grid } },
        }
      : {
          type: 'value',
          name: 'count',
          nameLocation: 'middle',
          nameGap: 48,
          axisLine: { onZero: false },
          splitLine: { lineStyle: { color: CHART_COLORS.grid } },
        },
    dataZoom: [
      { type: 'inside', xAxisIndex: 0, filterMode: 'none' },
      { type: 'slider', xAxisIndex: 0, height: 16, bottom: 6, filterMode: 'none' },
    ],
    series: [
      {
        type: 'line',
        name: CENTROID_SERIES.histogram,
        step: 'middle',
        symbol: 'none',
        // On a log axis an empty bin is a gap (log 0 is undefined), as in the histogram panels.
        data: bins.map((b) => [b.centre, logScale && b.count <= 0 ? null : b.count]),
        lineStyle: { color: CHART_COLORS.bar, width: 1 },
        itemStyle: { color: CHART_COLORS.bar },
        areaStyle: { color: CHART_COLORS.bar, opacity: 0.35 },
      },
      {
        type: 'line',
        name: CENTROID_SERIES.learned,
        data: [],
        itemStyle: { color: CHART_COLORS.outlier },
        lineStyle: { color: CHART_COLORS.outlier },
        markLine: marks(centroids, CHART_COLORS.outlier, 'solid', 1.5),
      },
      {
        type: 'line',
        name: CENTROID_SERIES.uniform,
        data: [],
        itemStyle: { color: CHART_COLORS.markLine },
        lineStyle: { color: CHART_COLORS.markLine, type: 'dashed' },
        markLine: marks(uniformLike(centroids), CHART_COLORS.markLine, 'dashed', 1),
      },
    ],
  }
}
