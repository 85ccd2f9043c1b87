// The Recover view's live charts: the training loss with its two parts (KL and CE) per optimizer step,
// and the eval perplexity measured every N steps, drawn against the teacher's perplexity (the target)
// and the student's at the start (where recovery began) as horizontal reference lines.

import type { TrainingEvalPoint, TrainingStepPoint } from '@contract/api'
import { formatValue } from '../lib/format'
import { CHART_COLORS, MONO_FONT } from './palette'
import type { ChartOption } from './types'

/** Series colours: the loss in the bar blue, its parts in contrasting hues. */
const LOSS_COLORS = { loss: CHART_COLORS.bar, kl: CHART_COLORS.outlier, ce: CHART_COLORS.negative } as const
const REFERENCE_COLORS = { teacher: CHART_COLORS.negative, student: CHART_COLORS.outlier } as const

/** The perplexities the eval curve is read against; null where not measured. */
export interface PplReferences {
  teacher: number | null
  studentStart: number | null
}

/** [step, value] pairs of one field, for a value x axis (steps may arrive with gaps). */
function pairs(points: readonly TrainingStepPoint[], field: 'loss' | 'kl' | 'ce'): [number, number][] {
  return points.map((p) => [p.step, p[field]])
}

function baseOption(totalSteps: number, yName: string): ChartOption {
  return {
    animation: false,
    textStyle: { fontFamily: MONO_FONT, fontSize: 11, color: CHART_COLORS.text },
    grid: { left: 56, right: 24, top: 36, bottom: 40 },
    legend: { top: 4, right: 24, itemHeight: 8, textStyle: { fontSize: 11 } },
    tooltip: { trigger: 'axis' },
    xAxis: {
      type: 'value',
      name: 'step',
      nameLocation: 'middle',
      nameGap: 24,
      min: 1,
      max: Math.max(1, totalSteps),
      minInterval: 1,
      axisLine: { lineStyle: { color: CHART_COLORS.axis } },
      splitLine: { show: false },
    },
    yAxis: {
      type: 'value',
      name: yName,
      scale: true,
      axisLine: { lineStyle: { color: CHART_COLORS.axis } },
      splitLine: { lineStyle: { color: CHART_COLORS.grid } },
    },
  }
}

/**
 * Loss, KL and CE per step. KL is left out when every step's is 0 (plain fine-tuning: LoRA's
 * cross-entropy, or distill with alpha 0), where it would only draw a flat line.
 */
export function trainingLossOption(points: readonly TrainingStepPoint[], totalSteps: number): ChartOption {
  const distilled = points.some((p) => p.kl !== 0)
  const line = (name: string, field: 'loss' | 'kl' | 'ce', color: string) => ({
    type: 'line' as const,
    name,
    data: pairs(points, field),
    showSymbol: points.length <= 1,
    lineStyle: { width: field === 'loss' ? 2 : 1.2, color },
    itemStyle: { color },
  })
  return {
    ...baseOption(totalSteps, 'loss'),
    series: [
      line('loss', 'loss', LOSS_COLORS.loss),
      ...(distilled ? [line('KL', 'kl', LOSS_COLORS.kl)] : []),
      line('CE', 'ce', LOSS_COLORS.ce),
    ],
  }
}

/** The step with the lowest eval perplexity (the first of equals), or null before any eval. */
export function bestEval(evals: readonly TrainingEvalPoint[]): TrainingEvalPoint | null {
  let best: TrainingEvalPoint | null = null
  for (const e of evals) if (!best || e.ppl < best.ppl) best = e
  return best
}

/** Eval perplexity per measured step, with the teacher's and the starting student's as reference lines. */
export function evalPplOption(
  evals: readonly TrainingEvalPoint[],
  refs: PplReferences,
  totalSteps: number,
): ChartOption {
  const reference = (label: string, value: number | null, color: string) =>
    value !== null && Number.isFinite(value)
      ? [
          {
            yAxis: value,
            name: label,
            lineStyle: { color, type: 'dashed' as const },
            label: { formatter: `${label} ${formatValue(value)}`, position: 'insideEndTop' as const, color },
          },
        ]
      : []
  const best = bestEval(evals)
  const base = baseOption(totalSteps, 'perplexity')
  // The axis spans the curve and both reference lines, so neither line falls off the chart.
  const shown = [...evals.map((e) => e.ppl), refs.teacher, refs.studentStart].filter(
    (v): v is number => v !== null && Number.isFinite(v),
  )
  const yAxis = shown.length
    ? {
        ...(base.yAxis as object),
        min: pplAxisBound(Math.min(...shown), 0.95),
        max: pplAxisBound(Math.max(...shown), 1.05),
      }
    : base.yAxis
  return {
    ...base,
    yAxis,
    series: [
      {
        type: 'line',
        name: 'eval perplexity',
        data: evals.map((e) => [e.step, e.ppl]),
        showSymbol: true,
        symbolSize: 6,
        lineStyle: { width: 2, color: CHART_COLORS.bar },
        itemStyle: { color: CHART_COLORS.bar },
        markLine: {
          silent: true,
          symbol: 'none',
          data: [
            ...reference('teacher', refs.teacher, REFERENCE_COLORS.teacher),
            ...reference('student at start', refs.studentStart, REFERENCE_COLORS.student),
            ...(best
              ? [
                  {
                    xAxis: best.step,
                    name: 'best',
                    lineStyle: { color: CHART_COLORS.markLine, type: 'dotted' as const },
                    label: { formatter: 'best', color: CHART_COLORS.markLine },
                  },
                ]
              : []),
          ],
        },
      },
    ],
  }
}

/** An axis end a little beyond `value`, rounded to 2 significant digits for readable ticks. */
export function pplAxisBound(value: number, factor: number): number {
  const v = value * factor
  const scale = 10 ** (Math.floor(Math.log10(Math.abs(v) || 1)) - 1)
  return (factor < 1 ? Math.floor(v / scale) : Math.ceil(v / scale)) * scale
}
