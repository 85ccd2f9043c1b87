// One value per decoder block as bars: angular distance between a block's input and output, or the
// NLL increase when the block is skipped. Bars below zero (skipping helped) get their own colour.

import { formatValue } from '../lib/format'
import { CHART_COLORS, MONO_FONT } from './palette'
import type { ChartOption } from './types'

export interface LayerBar {
  value: number | null
  itemStyle?: { color: string }
}

/** Bars per block; a non-finite value leaves a gap, a negative one is drawn in the 'negative' colour, a block marked to drop in the outlier colour. */
export function layerBars(values: readonly number[], marked: readonly number[] = []): LayerBar[] {
  return values.map((v, i) => {
    if (!Number.isFinite(v)) return { value: null }
    if (marked.includes(i)) return { value: v, itemStyle: { color: CHART_COLORS.outlier } }
    return v < 0 ? { value: v, itemStyle: { color: CHART_COLORS.negative } } : { value: v }
  })
}

export interface LayerMeasure {
  /** The series name and tooltip label, e.g. 'angular distance'. */
  name: string
  /** The value axis name, e.g. 'ΔNLL'. */
  axisName: string
}

export function layerBarOption(
  values: readonly number[],
  measure: LayerMeasure,
  marked: readonly number[] = [],
): ChartOption {
  return {
    animation: false,
    textStyle: { fontFamily: MONO_FONT, fontSize: 11, color: CHART_COLORS.text },
    grid: { left: 64, right: 24, top: 28, bottom: 44 },
    tooltip: {
      trigger: 'axis',
      axisPointer: { type: 'shadow' },
      formatter: (params: unknown) => {
        const first = (Array.isArray(params) ? params[0] : params) as { dataIndex: number }
        const v = values[first.dataIndex]
        if (v === undefined) return ''
        return `block ${first.dataIndex}<br/>${measure.name} ${formatValue(v)}`
      },
    },
    xAxis: {
      type: 'category',
      data: values.map((_, i) => String(i)),
      name: 'block',
      nameLocation: 'middle',
      nameGap: 26,
      axisLine: { onZero: true, lineStyle: { color: CHART_COLORS.axis } },
      axisLabel: { interval: values.length <= 48 ? 0 : 'auto' },
    },
    yAxis: {
      type: 'value',
      name: measure.axisName,
      splitLine: { lineStyle: { color: CHART_COLORS.grid } },
    },
    series: [
      {
        type: 'bar',
        name: measure.name,
        data: layerBars(values, marked),
        barCategoryGap: '25%',
        itemStyle: { color: CHART_COLORS.bar },
        label: {
          show: values.length <= 24,
          position: 'top',
          fontSize: 10,
          formatter: (p: unknown) => formatValue(Number((p as { value: unknown }).value), 3),
        },
      },
    ],
  }
}
