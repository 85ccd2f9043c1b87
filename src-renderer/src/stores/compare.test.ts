import { beforeEach, describe, expect, it } from 'vitest'
import { createPinia, setActivePinia } from 'pinia'
import type { CompressionSummary, ResultPoint } from '@contract/api'
import { provideApi } from '../bridge'
import { FakeEngine, settle } from '../testing/fake-engine'
import { parseSweepValues, useCompareStore } from './compare'
import { useCompressStore } from './compress'
import { useModelStore } from './model'

let engine: FakeEngine

beforeEach(async () => {
  engine = new FakeEngine()
  provideApi(engine)
  setActivePinia(createPinia())
  await useModelStore().open('/models/a')
})

function done(bits: number): CompressionSummary {
  return {
    compressedModelId: `cm-${bits}`,
    sourceModelId: 'id:/models/a',
    recipe: { steps: [{ method: 'rtn', params: { bits } }] },
    pplBefore: 4,
    pplBeforeReused: false,
    pplAfter: 4 + 8 / bits,
    pplAfterStep: [4 + 8 / bits],
    sparsity: 0,
    paramsBefore: 10,
    paramsAfter: 10,
    nonZeroParamsAfter: 10,
    evalText: null,
    seqlen: 256,
    bitsPerWeight: bits,
    bytesBefore: 40,
    bytesAfter: bits * 2,
    bytesDenseAfter: 40,
    seconds: 1,
    tensors: [],
  }
}

describe('compare store', () => {
  it('parses sweep values: numbers, words, booleans', () => {
    expect(parseSweepValues('2, 3 4;8')).toEqual([2, 3, 4, 8])
    expect(parseSweepValues('2:4, true')).toEqual(['2:4', true])
  })

  it('picks one point for details, a second to compare, a third replaces the second', () => {
    const compare = useCompareStore()
    compare.pick('a')
    compare.pick('b')
    compare.pick('c')
    expect(compare.picked).toEqual(['a', 'c'])
    compare.pick('a')
    expect(compare.picked).toEqual(['c'])
  })

  it('a sweep runs the recipe once per value, in order, and refreshes the points after each', async () => {
    const compress = useCompressStore()
    compress.apply({ steps: [{ method: 'rtn', params: { bits: 4, group_size: 32 } }] })
    const compare = useCompareStore()
    compare.sweepParam = 'bits'
    compare.sweepValues = '3, 8'
    engine.onStart = (id, spec) => {
      if (spec.kind !== 'compress') return
      const bits = spec.recipe.steps[0].params!.bits as number
      engine.results.push({ id, bitsPerWeight: bits } as unknown as ResultPoint)
      queueMicrotask(() =>
        engine.emit({ id, kind: 'compress', state: 'done', progress: 1, message: 'done', result: done(bits) }),
      )
    }
    await compare.runSweep()
    await settle()
    const sent = engine.started
      .filter((s) => s.spec.kind === 'compress')
      .map((s) => (s.spec as { recipe: { steps: { params: Record<string, unknown> }[] } }).recipe.steps[0].params)
    expect(sent).toEqual([
      { bits: 3, group_size: 32 },
      { bits: 8, group_size: 32 },
    ])
    expect(compare.points.map((p) => p.bitsPerWeight)).toEqual([3, 8])
    expect(compare.sweepNote).toBe('done: 2 runs')
  })

  it('refuses a malformed sweep before running anything', async () => {
    const compare = useCompareStore()
    compare.sweepValues = ''
    await compare.runSweep()
    expect(engine.started.filter((s) => s.spec.kind === 'compress')).toHaveLength(0)
    expect(compare.sweepNote).toMatch(/values must be a non-empty list/)
  })
})
