// Calibration activations of one Linear input: per-channel absmax as bars, channels above the report's
// threshold drawn in the outlier colour, and a dashed line at the threshold itself.

import type { ActivationInput, ActivationReport, InputGroup } from '@contract/api'
import { formatValue } from '../lib/format'
import { axisMaxShowing, splitByOutliers, type OutlierChannel } from './channel-option'
import { CHART_COLORS, MONO_FONT } from './palette'
import type { ChartOption } from './types'

/** The order inputs are read inside a block. */
export const INPUT_GROUPS: readonly InputGroup[] = ['qkv', 'o', 'gate_up', 'down']

/** What each input group is, in words: the Linears that read it. */
export const GROUP_LABEL: Readonly<Record<InputGroup, string>> = {
  qkv: 'q/k/v_proj input',
  o: 'o_proj input',
  gate_up: 'gate/up_proj input',
  down: 'down_proj input',
}

/** Layers that have at least one captured input, ascending. */
export function activationLayers(report: ActivationReport): number[] {
  return [...new Set(report.inputs.map((i) => i.layer))].sort((a, b) => a - b)
}

export function findInput(report: ActivationReport, layer: number, group: InputGroup): ActivationInput | null {
  return report.inputs.find((i) => i.layer === layer && i.group === group) ?? null
}

/** Outlier channels, largest absmax first; indices outside the input are ignored. */
export function activationOutliers(input: ActivationInput): OutlierChannel[] {
  return input.outliers
    .filter((i) => Number.isInteger(i) && i >= 0 && i < input.absmax.length)
    .map((index) => ({ index, absmax: input.absmax[index] }))
    .sort((a, b) => b.absmax - a.absmax || a.index - b.index)
}

export function activationChannelOption(input: ActivationInput, threshold: number): ChartOption {
  const { plain, outliers } = splitByOutliers(input.absmax, input.outliers)
  return {
    animation: false,
    textStyle: { fontFamily: MONO_FONT, fontSize: 11, color: CHART_COLORS.text },
    grid: { left: 64, right: 24, top: 24, bottom: 64 },
    tooltip: {
      trigger: 'axis',
      axisPointer: { type: 'shadow' },
      formatter: (params: unknown) => {
        const first = (Array.isArray(params) ? params[0] : params) as { dataIndex: number }
        const i = first.dataIndex
        const absmax = input.absmax[i]
        if (absmax === undefined) return ''
        const tag = outliers[i] !== null ? ' (outlier)' : ''
        const mean = input.meanAbs[i]
        // The importance-matrix value of this channel (llama-imatrix's Σx² / tokens): the same profile.
        const meanSq = input.meanSq?.[i]
        return `channel ${i}${tag}<br/>absmax ${formatValue(absmax)}${mean === undefined ? '' : `<br/>mean |x| ${formatValue(mean)}`}${meanSq === undefined ? '' : `<br/>mean x² (imatrix) ${formatValue(meanSq)}`}`
      },
    },
    xAxis: {
      type: 'category',
      data: input.absmax.map((_, i) => String(i)),
      name: 'input channel',
      nameLocation: 'middle',
      nameGap: 26,
      axisLine: { lineStyle: { color: CHART_COLORS.axis } },
    },
    yAxis: {
      type: 'value',
      name: '|x| max',
      max: axisMaxShowing(input.absmax, threshold),
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
          // A backed label stays readable where it crosses the bars.
          label: {
            formatter: `threshold ${formatValue(threshold)}`,
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
        data: outliers,
        barGap: '-100%',
        barCategoryGap: '10%',
        itemStyle: { color: CHART_COLORS.outlier },
      },
    ],
  }
}

/** Where to look first: the input with the most outlier channels (earliest in model order on ties). */
export function mostOutlierInput(report: ActivationReport): { layer: number; group: InputGroup } | null {
  let best: ActivationInput | null = null
  for (const input of report.inputs) if (!best || input.outliers.length > best.outliers.length) best = input
  return best ? { layer: best.layer, group: best.group } : null
}
