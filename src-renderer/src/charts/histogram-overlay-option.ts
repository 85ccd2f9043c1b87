// Before/after value histograms of one tensor on the same bins: in each bin the original's bar and the
// compressed one's stand side by side, so neither hides the other (drawn on top of each other, the
// quantization grid's tall comb teeth covered the original wherever they landed). Bars rather than a
// line: on a log axis empty bins are gaps, and a lone non-empty bin between gaps still reads as a bar.
// Both histograms must share their range and bin count (the store asks the engine for exactly that).

import type { Histogram } from '@contract/api'
import { formatInteger, formatValue } from '../lib/format'
import { histogramAxes, histogramBins, histogramSeriesData } from './histogram-option'
import { CHART_COLORS, MONO_FONT } from './palette'
import type { ChartOption } from './types'

/** True when the two histograms count over the same bins (same range and count, to rounding). */
export function sameBinning(a: Histogram, b: Histogram): boolean {
  if (a.counts.length !== b.counts.length) return false
  const tol = 1e-9 * Math.max(1, Math.abs(a.lo), Math.abs(a.hi))
  return Math.abs(a.lo - b.lo) <= tol && Math.abs(a.hi - b.hi) <= tol
}

export const OVERLAY_SERIES = { before: 'original', after: 'compressed' } as const

export function histogramOverlayOption(before: Histogram, after: Histogram, logScale: boolean): ChartOption {
  if (!sameBinning(before, after)) throw new Error('the two histograms do not share their bins')
  const bins = histogramBins(before)
  return {
    animation: false,
    textStyle: { fontFamily: MONO_FONT, fontSize: 11, color: CHART_COLORS.text },
    grid: { left: 64, right: 16, top: 30, bottom: 64 },
    legend: { top: 0, right: 8, data: [OVERLAY_SERIES.before, OVERLAY_SERIES.after] },
    tooltip: {
      trigger: 'axis',
      axisPointer: { type: 'shadow' },
      formatter: (params: unknown) => {
        const first = (Array.isArray(params) ? params[0] : params) as { dataIndex: number }
        const i = first.dataIndex
        const bin = bins[i]
        if (!bin) return ''
        return [
          `[${formatValue(bin.lo)}, ${formatValue(bin.hi)})`,
          `${OVERLAY_SERIES.before} ${formatInteger(before.counts[i] ?? 0)}`,
          `${OVERLAY_SERIES.after} ${formatInteger(after.counts[i] ?? 0)}`,
        ].join('<br/>')
      },
    },
    ...histogramAxes(
      bins.map((b) => b.centre),
      logScale,
    ),
    series: [
      {
        type: 'bar',
        name: OVERLAY_SERIES.before,
        data: histogramSeriesData(before, logScale),
        barGap: '0%',
        barCategoryGap: '10%',
        itemStyle: { color: CHART_COLORS.pair[0], opacity: 0.8 },
      },
      {
        type: 'bar',
        name: OVERLAY_SERIES.after,
        data: histogramSeriesData(after, logScale),
        barGap: '0%',
        barCategoryGap: '10%',
        itemStyle: { color: CHART_COLORS.pair[1], opacity: 0.9 },
      },
    ],
  }
}
