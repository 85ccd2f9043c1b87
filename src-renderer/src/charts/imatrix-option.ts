// An importance matrix entry's channel profile: per input channel √(mean x²), the RMS of the inputs the
// weight saw while llama-imatrix (or `whittle imatrix`) ran, whose square llama-quantize weighs each column
// by. Channels above OUTLIER_FACTOR × the median RMS are drawn in the outlier colour with a dashed line at
// that level; when the activation view has captured the same input, its √meanSq is drawn over the bars as a
// line, so the file's profile and Whittle's calibration can be compared channel by channel.

import type { ImatrixProfile, ImatrixTensorProfile, InputGroup, TensorRole } from '@contract/api'
import { formatValue } from '../lib/format'
import { axisMaxShowing, splitByOutliers } from './channel-option'
import { CHART_COLORS, MONO_FONT } from './palette'
import type { ChartOption } from './types'

/** A channel is marked when its RMS exceeds this many times the entry's median RMS (the inspect view's k). */
export const OUTLIER_FACTOR = 6

export interface ImatrixChannel {
  index: number
  rms: number
}

/** √(mean x²) per channel; negative or non-finite values (a damaged file) read as 0. */
export function channelRms(t: ImatrixTensorProfile): number[] {
  return t.meanSq.map((v) => (Number.isFinite(v) && v > 0 ? Math.sqrt(v) : 0))
}

function median(values: readonly number[]): number {
  if (values.length === 0) return 0
  const s = [...values].sort((a, b) => a - b)
  const mid = s.length >> 1
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2
}

/** The RMS above which a channel is marked: OUTLIER_FACTOR × the median. */
export function imatrixThreshold(t: ImatrixTensorProfile): number {
  return OUTLIER_FACTOR * median(channelRms(t))
}

/** Marked channels, largest first. */
export function imatrixOutliers(t: ImatrixTensorProfile): ImatrixChannel[] {
  const rms = channelRms(t)
  const threshold = imatrixThreshold(t)
  return rms
    .map((v, index) => ({ index, rms: v }))
    .filter((c) => threshold > 0 && c.rms > threshold)
    .sort((a, b) => b.rms - a.rms || a.index - b.index)
}

/** Layers with at least one entry, ascending. */
export function imatrixLayers(profile: ImatrixProfile): number[] {
  return [...new Set(profile.tensors.flatMap((t) => (t.layer === null ? [] : [t.layer])))].sort((a, b) => a - b)
}

/** A layer's entries' roles, in the profile's (block) order. */
export function imatrixRoles(profile: ImatrixProfile, layer: number): TensorRole[] {
  return profile.tensors.filter((t) => t.layer === layer && t.role !== null).map((t) => t.role!)
}

export function findImatrixTensor(
  profile: ImatrixProfile,
  layer: number,
  role: TensorRole,
): ImatrixTensorProfile | null {
  return profile.tensors.find((t) => t.layer === layer && t.role === role) ?? null
}

/** The first entry that weighs the input `group` of `layer` (q for qkv, gate for gate_up, …), for the link from the activation view. */
export function imatrixTensorForInput(
  profile: ImatrixProfile,
  layer: number,
  group: InputGroup,
): ImatrixTensorProfile | null {
  return profile.tensors.find((t) => t.layer === layer && t.group === group) ?? null
}

export function imatrixChannelOption(t: ImatrixTensorProfile, captured: readonly number[] | null = null): ChartOption {
  const rms = channelRms(t)
  const threshold = imatrixThreshold(t)
  const outliers = imatrixOutliers(t).map((c) => c.index)
  const { plain, outliers: marked } = splitByOutliers(rms, outliers)
  const capturedRms =
    captured && captured.length === rms.length
      ? captured.map((v) => (Number.isFinite(v) && v > 0 ? Math.sqrt(v) : 0))
      : null
  return {
    animation: false,
    textStyle: { fontFamily: MONO_FONT, fontSize: 11, color: CHART_COLORS.text },
    grid: { left: 64, right: 24, top: 24, bottom: 64 },
    legend: capturedRms ? { top: 0, right: 24, data: ['imatrix', 'activation capture'] } : undefined,
    tooltip: {
      trigger: 'axis',
      axisPointer: { type: 'shadow' },
      formatter: (params: unknown) => {
        const first = (Array.isArray(params) ? params[0] : params) as { dataIndex: number }
        const i = first.dataIndex
        if (rms[i] === undefined) return ''
        const tag = marked[i] !== null ? ' (outlier)' : ''
        const cap = capturedRms ? `<br/>capture √(mean x²) ${formatValue(capturedRms[i])}` : ''
        return `channel ${i}${tag}<br/>mean x² ${formatValue(t.meanSq[i])}<br/>√(mean x²) ${formatValue(rms[i])}${cap}`
      },
    },
    xAxis: {
      type: 'category',
      data: rms.map((_, i) => String(i)),
      name: 'input channel',
      nameLocation: 'middle',
      nameGap: 26,
      axisLine: { lineStyle: { color: CHART_COLORS.axis } },
    },
    yAxis: {
      type: 'value',
      name: '√(mean x²)',
      max: axisMaxShowing(capturedRms ? [...rms, ...capturedRms] : rms, threshold),
      splitLine: { lineStyle: { color: CHART_COLORS.grid } },
    },
    dataZoom: [
      { type: 'inside', xAxisIndex: 0 },
      { type: 'slider', xAxisIndex: 0, height: 16, bottom: 6 },
    ],
    series: [
      {
        type: 'bar',
        name: 'imatrix',
        data: plain,
        barCategoryGap: '10%',
        large: true,
        itemStyle: { color: CHART_COLORS.bar },
        markLine: {
          symbol: 'none',
          silent: true,
          lineStyle: { type: 'dashed', color: CHART_COLORS.markLine },
          label: {
            formatter: `${OUTLIER_FACTOR} × median ${formatValue(threshold)}`,
            position: 'insideEndTop',
            backgroundColor: 'rgba(255,255,255,0.85)',
            padding: [1, 3],
          },
          data: [{ yAxis: threshold }],
        },
      },
      {
        type: 'bar',
        name: 'outliers',
        data: marked,
        barGap: '-100%',
        barCategoryGap: '10%',
        itemStyle: { color: CHART_COLORS.outlier },
      },
      ...(capturedRms
        ? [
            {
              type: 'line' as const,
              name: 'activation capture',
              data: capturedRms,
              symbol: 'none',
              lineStyle: { width: 1, color: CHART_COLORS.text },
            },
          ]
        : []),
    ],
  }
}
