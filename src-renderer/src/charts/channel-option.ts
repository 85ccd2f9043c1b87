// Per-channel absmax: one bar per channel, outlier channels drawn over them in a contrasting colour,
// and a dashed line at the outlier threshold k × median.

import type { ChannelProfile } from '@contract/api'
import { formatValue } from '../lib/format'
import { CHART_COLORS, MONO_FONT } from './palette'
import type { ChartOption } from './types'

export interface OutlierChannel {
  index: number
  absmax: number
}

/** Outlier channels, largest absmax first. */
export function outlierChannels(profile: ChannelProfile): OutlierChannel[] {
  return profile.outliers
    .filter((i) => Number.isInteger(i) && i >= 0 && i < profile.absmax.length)
    .map((index) => ({ index, absmax: profile.absmax[index] }))
    .sort((a, b) => b.absmax - a.absmax || a.index - b.index)
}

/**
 * Two overlaid series: every channel, and the outliers alone (null elsewhere), so the outlier bars
 * get their own colour without per-bar styles and the plain series can stay in ECharts' fast mode.
 */
export function channelSeriesData(profile: ChannelProfile): { plain: (number | null)[]; outliers: (number | null)[] } {
  return splitByOutliers(profile.absmax, profile.outliers)
}

/** `values` as two complementary series: the outlier indices' values in one, every other in the other. */
export function splitByOutliers(
  values: readonly number[],
  outlierIndices: readonly number[],
): { plain: (number | null)[]; outliers: (number | null)[] } {
  const isOutlier = new Set(outlierIndices)
  return {
    plain: values.map((v, i) => (isOutlier.has(i) ? null : v)),
    outliers: values.map((v, i) => (isOutlier.has(i) ? v : null)),
  }
}

export function channelThreshold(profile: ChannelProfile, k: number): number {
  return k * profile.median
}

const NICE_STEPS = [1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]

/** Rounds up to a short mantissa (1, 1.2, 1.5, 2, ... 8) times a power of ten: a readable axis end. */
export function niceCeil(x: number): number {
  if (!(x > 0) || !Number.isFinite(x)) return 1
  const power = 10 ** Math.floor(Math.log10(x))
  const m = x / power
  const step = NICE_STEPS.find((s) => m <= s * (1 + 1e-12)) ?? 10
  // toPrecision strips binary noise (3 × 0.1 is 0.30000000000000004), which would show on the axis.
  return Number((step * power).toPrecision(12))
}

/**
 * The value axis must reach the threshold line; when some channel already does, ECharts' own
 * choice (undefined) is best.
 */
export function channelAxisMax(profile: ChannelProfile, threshold: number): number | undefined {
  return axisMaxShowing(profile.absmax, threshold)
}

/** A value-axis end that keeps a horizontal line at `line` on screen above `values` (undefined: ECharts' own). */
export function axisMaxShowing(values: readonly number[], line: number): number | undefined {
  let dataMax = 0
  for (const v of values) if (v > dataMax) dataMax = v
  return Number.isFinite(line) && line >= dataMax ? niceCeil(line * 1.05) : undefined
}

export function channelOption(profile: ChannelProfile, k: number): ChartOption {
  const { plain, outliers } = channelSeriesData(profile)
  const threshold = channelThreshold(profile, k)
  const axisName = profile.axis === 'out' ? 'output channel (row)' : 'input channel (column)'
  return {
    animation: false,
    textStyle: { fontFamily: MONO_FONT, fontSize: 11, color: CHART_COLORS.text },
    grid: { left: 64, right: 24, top: 20, bottom: 64 },
    tooltip: {
      trigger: 'axis',
      axisPointer: { type: 'shadow' },
      formatter: (params: unknown) => {
        const first = (Array.isArray(params) ? params[0] : params) as { dataIndex: number }
        const i = first.dataIndex
        const value = profile.absmax[i]
        if (value === undefined) return ''
        const tag = outliers[i] !== null ? ' (outlier)' : ''
        return `channel ${i}${tag}<br/>absmax ${formatValue(value)}`
      },
    },
    xAxis: {
      type: 'category',
      data: profile.absmax.map((_, i) => String(i)),
      name: axisName,
      nameLocation: 'middle',
      nameGap: 26,
      axisLine: { lineStyle: { color: CHART_COLORS.axis } },
    },
    yAxis: {
      type: 'value',
      name: '|w| max',
      // Keep the threshold line on screen even when every channel is far below it.
      max: channelAxisMax(profile, threshold),
      splitLine: { lineStyle: { color: CHART_COLORS.grid } },
    },
    dataZoom: [
      { type: 'inside', xAxisIndex: 0 },
      { type: 'slider', xAxisIndex: 0, height: 16, bottom: 6 },
    ],
    series: [
      {
        type: 'bar',
        name: 'absmax',
        data: plain,
        barCategoryGap: '10%',
        large: true,
        itemStyle: { color: CHART_COLORS.bar },
        markLine: {
          symbol: 'none',
          silent: true,
          lineStyle: { type: 'dashed', color: CHART_COLORS.markLine },
          label: { formatter: `${k}× median = ${formatValue(threshold)}`, position: 'insideEndTop' },
          data: [{ yAxis: threshold }],
        },
      },
      {
        type: 'bar',
        name: 'outliers',
        data: outliers,
        barGap: '-100%',
        barCategoryGap: '10%',
        itemStyle: { color: CHART_COLORS.outlier },
      },
    ],
  }
}
