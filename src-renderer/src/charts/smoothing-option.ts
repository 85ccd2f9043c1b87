// SmoothQuant preview: as the migration strength α goes from 0 to 1, the activation range (max over
// channels of |X_j| / s_j) falls and the weight range (max |W_j| · s_j) rises. Both on one log axis,
// with a vertical marker at the α being considered.

import type { ActivationReport, SmoothingPreview } from '@contract/api'
import { formatValue } from '../lib/format'
import { CHART_COLORS, MONO_FONT } from './palette'
import type { ChartOption } from './types'

export const DEFAULT_ALPHA = 0.5

/** Index of the α in `alphas` closest to `alpha` (0 for an empty list). */
export function nearestAlphaIndex(alphas: readonly number[], alpha: number): number {
  let best = 0
  for (let i = 1; i < alphas.length; i++) {
    if (Math.abs(alphas[i] - alpha) < Math.abs(alphas[best] - alpha)) best = i
  }
  return best
}

export function findSmoothing(
  report: ActivationReport,
  layer: number,
  group: SmoothingPreview['group'],
): SmoothingPreview | null {
  return report.smoothing.find((s) => s.layer === layer && s.group === group) ?? null
}

/** One value per α; a value a log axis cannot show (≤ 0, non-finite, missing) becomes a gap. */
export function logValues(alphas: readonly number[], values: readonly number[]): (number | null)[] {
  return alphas.map((_, i) => {
    const v = values[i]
    return v !== undefined && Number.isFinite(v) && v > 0 ? v : null
  })
}

export function smoothingOption(
  preview: SmoothingPreview,
  alphas: readonly number[],
  markedAlpha: number,
): ChartOption {
  const [actColor, weightColor] = CHART_COLORS.pair
  const marked = nearestAlphaIndex(alphas, markedAlpha)
  return {
    animation: false,
    textStyle: { fontFamily: MONO_FONT, fontSize: 11, color: CHART_COLORS.text },
    grid: { left: 64, right: 24, top: 36, bottom: 44 },
    legend: { top: 4, right: 24, itemHeight: 8, textStyle: { fontSize: 11 } },
    tooltip: {
      trigger: 'axis',
      formatter: (params: unknown) => {
        const list = (Array.isArray(params) ? params : [params]) as { dataIndex: number }[]
        const i = list[0]?.dataIndex
        if (i === undefined || alphas[i] === undefined) return ''
        return [
          `α = ${formatValue(alphas[i])}`,
          `activation range ${formatValue(preview.activationRange[i] ?? Number.NaN)}`,
          `weight range ${formatValue(preview.weightRange[i] ?? Number.NaN)}`,
        ].join('<br/>')
      },
    },
    // α is a short fixed grid: one category per α keeps the axis tooltip on the points themselves.
    xAxis: {
      type: 'category',
      data: alphas.map((a) => formatValue(a)),
      boundaryGap: false,
      name: 'α (migration strength)',
      nameLocation: 'middle',
      nameGap: 26,
      axisLine: { lineStyle: { color: CHART_COLORS.axis } },
    },
    yAxis: {
      type: 'log',
      logBase: 10,
      name: 'range (log)',
      splitLine: { lineStyle: { color: CHART_COLORS.grid } },
    },
    series: [
      {
        type: 'line',
        name: 'activation range',
        data: logValues(alphas, preview.activationRange),
        symbolSize: 5,
        lineStyle: { color: actColor, width: 2 },
        itemStyle: { color: actColor },
        markLine: {
          symbol: 'none',
          silent: true,
          lineStyle: { type: 'dashed', color: CHART_COLORS.markLine },
          label: { formatter: `α = ${formatValue(alphas[marked] ?? markedAlpha)}`, position: 'end' },
          // On a category axis a number is the category's index.
          data: [{ xAxis: marked }],
        },
      },
      {
        type: 'line',
        name: 'weight range',
        data: logValues(alphas, preview.weightRange),
        symbolSize: 5,
        lineStyle: { color: weightColor, width: 2 },
        itemStyle: { color: weightColor },
      },
    ],
  }
}

export interface SmoothingRow {
  layer: number
  group: SmoothingPreview['group']
  /** Largest calibration |x| over the input's channels, before any smoothing. */
  activationAbsmax: number
  activationRange: number
  weightRange: number
}

/** Every previewed input at the α nearest `alpha`, in model order. */
export function smoothingRows(report: ActivationReport, alpha: number): SmoothingRow[] {
  const i = nearestAlphaIndex(report.alphas, alpha)
  return report.smoothing
    .map((s) => {
      const input = report.inputs.find((x) => x.layer === s.layer && x.group === s.group)
      let activationAbsmax = Number.NaN
      for (const v of input?.absmax ?? [])
        if (Number.isFinite(v) && (Number.isNaN(activationAbsmax) || v > activationAbsmax)) activationAbsmax = v
      return {
        layer: s.layer,
        group: s.group,
        activationAbsmax,
        activationRange: s.activationRange[i] ?? Number.NaN,
        weightRange: s.weightRange[i] ?? Number.NaN,
      }
    })
    .sort((a, b) => a.layer - b.layer || (a.group === b.group ? 0 : a.group === 'qkv' ? -1 : 1))
}

/** Where to look first: the previewed input with the largest unsmoothed activation absmax. */
export function hardestSmoothing(report: ActivationReport): { layer: number; group: SmoothingPreview['group'] } | null {
  let best: SmoothingRow | null = null
  for (const row of smoothingRows(report, DEFAULT_ALPHA)) {
    if (!best || row.activationAbsmax > best.activationAbsmax) best = row
  }
  return best ? { layer: best.layer, group: best.group } : null
}
