import { describe, expect, it } from 'vitest'
import type { TrainingEvalPoint, TrainingStepPoint } from '@contract/api'
import { bestEval, evalPplOption, pplAxisBound, trainingLossOption } from './training-option'

const point = (step: number, ce: number, kl: number): TrainingStepPoint => ({
  step,
  ce,
  kl,
  loss: 0.5 * 4 * kl + 0.5 * ce,
  tokensPerSecond: 1000,
  etaSeconds: 10 - step,
})

interface LineSeries {
  name: string
  data: [number, number][]
  markLine?: { data: { yAxis?: number; xAxis?: number; name: string }[] }
}
type Shaped = { xAxis: { min: number; max: number }; yAxis: { min?: number; max?: number }; series: LineSeries[] }

describe('training loss chart', () => {
  it('draws loss, KL and CE against the step, on an axis spanning the whole run', () => {
    const steps = [point(1, 3, 0.9), point(2, 2.8, 0.7), point(4, 2.5, 0.5)]
    const o = trainingLossOption(steps, 10) as unknown as Shaped
    expect(o.series.map((s) => s.name)).toEqual(['loss', 'KL', 'CE'])
    expect(o.series[0].data).toEqual([
      [1, 0.5 * 4 * 0.9 + 0.5 * 3],
      [2, 0.5 * 4 * 0.7 + 0.5 * 2.8],
      [4, 0.5 * 4 * 0.5 + 0.5 * 2.5],
    ])
    expect(o.series[1].data).toEqual([
      [1, 0.9],
      [2, 0.7],
      [4, 0.5],
    ])
    expect(o.series[2].data.map(([, v]) => v)).toEqual([3, 2.8, 2.5])
    expect([o.xAxis.min, o.xAxis.max]).toEqual([1, 10])
  })

  it('leaves KL out when nothing is distilled (every KL is 0)', () => {
    const o = trainingLossOption([point(1, 3, 0), point(2, 2.9, 0)], 2) as unknown as Shaped
    expect(o.series.map((s) => s.name)).toEqual(['loss', 'CE'])
  })
})

describe('eval perplexity chart', () => {
  const evals: TrainingEvalPoint[] = [
    { step: 10, ppl: 9 },
    { step: 20, ppl: 7.5 },
    { step: 30, ppl: 7.5 },
    { step: 40, ppl: 8 },
  ]

  it('finds the best eval, the first of equals', () => {
    expect(bestEval(evals)).toEqual({ step: 20, ppl: 7.5 })
    expect(bestEval([])).toBeNull()
  })

  it('draws the evals with the teacher, the starting student and the best step as reference lines', () => {
    const o = evalPplOption(evals, { teacher: 5.14, studentStart: 22.37 }, 40) as unknown as Shaped
    expect(o.series[0].data).toEqual(evals.map((e) => [e.step, e.ppl]))
    const marks = o.series[0].markLine!.data
    expect(marks.map((m) => m.name)).toEqual(['teacher', 'student at start', 'best'])
    expect(marks[0].yAxis).toBe(5.14)
    expect(marks[1].yAxis).toBe(22.37)
    expect(marks[2].xAxis).toBe(20)
    // Both reference lines lie inside the axis.
    expect(o.yAxis.min!).toBeLessThanOrEqual(5.14)
    expect(o.yAxis.max!).toBeGreaterThanOrEqual(22.37)
  })

  it('leaves out a reference that was not measured', () => {
    const o = evalPplOption(evals, { teacher: null, studentStart: Number.NaN }, 40) as unknown as Shaped
    expect(o.series[0].markLine!.data.map((m) => m.name)).toEqual(['best'])
    expect(o.yAxis.min!).toBeLessThanOrEqual(7.5)
    expect(o.yAxis.max!).toBeGreaterThanOrEqual(9)
  })

  it('rounds axis ends outward to two significant digits', () => {
    expect(pplAxisBound(5.14, 0.95)).toBeCloseTo(4.8, 10)
    expect(pplAxisBound(22.37, 1.05)).toBe(24)
    expect(pplAxisBound(123, 1.05)).toBe(130)
  })
})
