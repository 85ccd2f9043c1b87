import { describe, expect, it } from 'vitest'
import type { ResultPoint } from '@contract/api'
import { expandSweep, sweepProblem } from '@contract/sweep'
import { compareOption } from '../charts/compare-option'
import { compareTensors, evalSettings, paretoFrontier } from './compare-points'

function point(id: string, bpw: number, ppl: number | null, extra: Partial<ResultPoint> = {}): ResultPoint {
  return {
    id,
    at: '2026-12-02T10:00:00.000Z',
    modelPath: '/m',
    modelName: 'm',
    recipe: { steps: [{ method: 'rtn', params: { bits: bpw } }] },
    label: `rtn (bits ${bpw})`,
    bitsPerWeight: bpw,
    bytesBefore: 1000,
    bytesAfter: 100 * bpw,
    bytesDenseAfter: 1000,
    sparsity: 0,
    paramsAfter: 10,
    pplBefore: 5,
    pplAfter: ppl,
    evalText: '/e.txt',
    seqlen: 256,
    maxEvalWindows: null,
    tensors: [{ name: 'a', method: 'rtn', bitsPerWeight: bpw, relWeightError: 0.1, relOutputError: 0.2 }],
    compressedModelId: null,
    ...extra,
  }
}

describe('Pareto frontier', () => {
  it('keeps exactly the points nothing beats on both size and perplexity, by size', () => {
    // Brute force: a point is dominated when another is ≤ on both and < on one.
    const pts = [
      point('a', 2, 20),
      point('b', 3, 9),
      point('c', 3, 11),
      point('d', 4, 5.6),
      point('e', 4.5, 5.7),
      point('f', 8, 5.15),
      point('g', 6, null),
    ]
    const dominated = (p: ResultPoint): boolean =>
      pts.some(
        (q) =>
          q !== p &&
          q.pplAfter !== null &&
          p.pplAfter !== null &&
          q.bitsPerWeight <= p.bitsPerWeight &&
          q.pplAfter <= p.pplAfter &&
          (q.bitsPerWeight < p.bitsPerWeight || q.pplAfter < p.pplAfter),
      )
    const expected = pts.filter((p) => p.pplAfter !== null && !dominated(p)).map((p) => p.id)
    expect(paretoFrontier(pts, 'bitsPerWeight').map((p) => p.id)).toEqual(expected)
    expect(expected).toEqual(['a', 'b', 'd', 'f'])
  })

  it('groups results by evaluation setting, most used first', () => {
    const pts = [point('a', 4, 6), point('b', 3, 9, { seqlen: 512 }), point('c', 2, 20)]
    expect(evalSettings(pts).map((s) => s.count)).toEqual([2, 1])
  })

  it('draws points with their ids, the frontier, and the before line', () => {
    const pts = [point('a', 2, 20), point('b', 4, 6), point('c', 4, 7)]
    const o = compareOption(pts, 'bitsPerWeight', new Set(['c'])) as {
      series: { type: string; data: { id: string; value: number[] }[]; markLine?: { data: { yAxis: number }[] } }[]
    }
    expect(o.series[0].data.map((d) => d.id)).toEqual(['a', 'b', 'c'])
    expect(o.series[1].data.map((d) => d.id)).toEqual(['a', 'b'])
    expect(o.series[0].markLine?.data[0].yAxis).toBe(5)
  })
})

describe('side by side', () => {
  it('pairs tensors by name, output error where measured, with B − A', () => {
    const a = point('a', 4, 6)
    const b = point('b', 3, 9, {
      tensors: [
        { name: 'a', method: 'rtn', bitsPerWeight: 3, relWeightError: 0.3, relOutputError: null },
        { name: 'z', method: 'rtn', bitsPerWeight: 3, relWeightError: 0.1, relOutputError: 0.5 },
      ],
    })
    const rows = compareTensors(a, b)
    expect(rows[0]).toEqual({ name: 'a', a: 0.2, b: 0.3, diff: 0.3 - 0.2 })
    expect(rows[1]).toEqual({ name: 'z', a: null, b: 0.5, diff: null })
  })
})

describe('sweep recipes', () => {
  it("expands one step's parameter over the values and leaves the rest alone", () => {
    const recipe = {
      steps: [
        { method: 'wanda', params: { sparsity: 0.5 } },
        { method: 'gptq', params: { bits: 4, group_size: 128 } },
      ],
      sweep: { step: 2, param: 'bits', values: [2, 3] },
    }
    const runs = expandSweep(recipe)
    expect(runs.map((r) => r.value)).toEqual([2, 3])
    expect(runs[0].recipe.steps[1].params).toEqual({ bits: 2, group_size: 128 })
    expect(runs[1].recipe.steps[0]).toEqual(recipe.steps[0])
    expect('sweep' in runs[0].recipe).toBe(false)
  })

  it('names what is wrong with a malformed sweep', () => {
    expect(sweepProblem({ param: 'bits', values: [] }, 1)).toMatch(/non-empty/)
    expect(sweepProblem({ step: 3, param: 'bits', values: [4] }, 2)).toMatch(/step must be/)
    expect(sweepProblem({ param: 'constructor.x', values: [4] }, 1)).toMatch(/param/)
    expect(sweepProblem({ param: 'bits', values: [4], extra: 1 }, 1)).toMatch(/unknown field "extra"/)
    expect(sweepProblem({ param: 'bits', values: [2, 3] }, 1)).toBeNull()
  })
})
