// The value histogram: counts over bin centres, linear or log count axis, zoomable along the values.

import type { Histogram } from '@contract/api'
import { formatInteger, formatValue } from '../lib/format'
import { CHART_COLORS, MONO_FONT } from './palette'
import type { ChartOption } from './types'

export interface HistogramBin {
  lo: number
  hi: number
  centre: number
  count: number
}

/** Equal-width bins over [lo, hi], as the engine counts them. */
export function histogramBins(h: Histogram): HistogramBin[] {
  const n = h.counts.length
  const width = n > 0 ? (h.hi - h.lo) / n : 0
  return h.counts.map((count, i) => {
    const lo = h.lo + i * width
    const hi = i === n - 1 ? h.hi : h.lo + (i + 1) * width
    return { lo, hi, centre: (lo + hi) / 2, count }
  })
}

/**
 * Counts per bin. On a log axis an empty bin has no bar at all (log 0 is undefined), so its value
 * becomes null rather than 0; the axis starts below 1 (LOG_AXIS_MIN) so a bin holding a single value,
 * typically an outlier, still gets a visible bar.
 */
export function histogramSeriesData(h: Histogram, logScale: boolean): (number | null)[] {
  return h.counts.map((c) => (logScale && c <= 0 ? null : c))
}

export function histogramOption(h: Histogram, logScale: boolean): ChartOption {
  const bins = histogramBins(h)
  return {
    animation: false,
    textStyle: { fontFamily: MONO_FONT, fontSize: 11, color: CHART_COLORS.text },
    grid: { left: 64, right: 16, top: 16, bottom: 64 },
    tooltip: {
      trigger: 'axis',
      axisPointer: { type: 'shadow' },
      formatter: (params: unknown) => {
        const first = (Array.isArray(params) ? params[0] : params) as { dataIndex: number }
        const bin = bins[first.dataIndex]
        if (!bin) return ''
        return `[${formatValue(bin.lo)}, ${formatValue(bin.hi)})<br/>count ${formatInteger(bin.count)}`
      },
    },
    ...histogramAxes(
      bins.map((b) => b.centre),
      logScale,
    ),
    series: [
      {
        type: 'bar',
        name: 'count',
        data: histogramSeriesData(h, logScale),
        barCategoryGap: '8%',
        itemStyle: { color: CHART_COLORS.bar },
      },
    ],
  }
}

/** Where a log count axis starts: half a count, so bars of count 1 rise log10(2) of a decade. */
export const LOG_AXIS_MIN = 0.5
const COUNT_AXIS_NAME = { nameLocation: 'middle' as const, nameGap: 48, nameRotate: 90 }

/** The value axis, count axis (linear or log) and zoom shared by the histogram and its overlay. */
export function histogramAxes(centres: number[], logScale: boolean) {
  return {
    xAxis: {
      type: 'category' as const,
      data: centres.map((c) => formatValue(c, 3)),
      name: 'value',
      nameLocation: 'middle' as const,
      nameGap: 26,
      axisLine: { lineStyle: { color: CHART_COLORS.axis } },
      axisTick: { alignWithLabel: true },
    },
    // The count axis's title runs along the axis, beside the tick labels, where it has room.
    yAxis: logScale
      ? {
          type: 'log' as const,
          logBase: 10,
          min: LOG_AXIS_MIN,
          name: 'count (log)',
          ...COUNT_AXIS_NAME,
          splitLine: { lineStyle: { color: CHART_COLORS.grid } },
        }
      : {
          type: 'value' as const,
          name: 'count',
          ...COUNT_AXIS_NAME,
          splitLine: { lineStyle: { color: CHART_COLORS.grid } },
        },
    dataZoom: [
      { type: 'inside' as const, xAxisIndex: 0 },
      { type: 'slider' as const, xAxisIndex: 0, height: 16, bottom: 6 },
    ],
  }
}
