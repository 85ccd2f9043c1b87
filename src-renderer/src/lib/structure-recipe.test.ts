import { describe, expect, it } from 'vitest'
import type { MethodInfo } from '@contract/method-params'
import type { ResultPoint } from '@contract/api'
import { structureMethods, structureSeries, structureStepOf, withStructureStep } from './structure-recipe'

const info = (name: string, kind: MethodInfo['kind']): MethodInfo => ({
  name,
  kind,
  summary: name,
  needsCalibration: false,
  params: [],
})
const C: MethodInfo[] = [info('rtn', 'quantize'), info('slicegpt', 'structure'), info('drop_layers', 'structure')]

function point(id: string, recipe: ResultPoint['recipe'], paramsAfter: number, pplAfter: number | null): ResultPoint {
  return { id, recipe, paramsAfter, pplAfter } as unknown as ResultPoint
}

describe('structure recipe', () => {
  it('takes the structural methods from the catalogue', () => {
    expect(structureMethods(C)).toEqual(['slicegpt', 'drop_layers'])
  })

  it('replaces the structural step in place and keeps the steps around it', () => {
    const recipe = {
      steps: [
        { method: 'drop_layers', params: { count: 1 } },
        { method: 'rtn', params: { bits: 4 } },
      ],
    }
    const next = withStructureStep(C, recipe, { method: 'slicegpt', params: { slicing: 0.2 } })
    expect(next.steps).toEqual([
      { method: 'slicegpt', params: { slicing: 0.2 } },
      { method: 'rtn', params: { bits: 4 } },
    ])
    expect(recipe.steps[0].method).toBe('drop_layers')
    expect(structureStepOf(C, next)?.number).toBe(1)
  })

  it('puts the step first when the recipe has none', () => {
    const next = withStructureStep(C, { steps: [{ method: 'rtn' }] }, { method: 'drop_layers' })
    expect(next.steps.map((s) => s.method)).toEqual(['drop_layers', 'rtn'])
    expect(structureStepOf(C, { steps: [{ method: 'rtn' }] })).toBeNull()
  })

  it('groups results by structural method, ordered by size, leaving out those without perplexity', () => {
    const s = (method: string) => ({ steps: [{ method }] })
    const series = structureSeries(C, [
      point('a', s('slicegpt'), 300, 6),
      point('b', s('rtn'), 100, 5.5),
      point('c', s('slicegpt'), 200, 7),
      point('d', s('drop_layers'), 250, 9),
      point('e', s('slicegpt'), 150, null),
    ])
    expect(series.map((x) => [x.method, x.points.map((p) => p.id)])).toEqual([
      ['slicegpt', ['c', 'a']],
      ['drop_layers', ['d']],
    ])
  })
})
