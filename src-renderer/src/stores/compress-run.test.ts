import { beforeEach, describe, expect, it } from 'vitest'
import { createPinia, setActivePinia } from 'pinia'
import type { CompressedTensor, CompressionSummary, JobSpec, TensorDetail } from '@contract/api'
import { provideApi } from '../bridge'
import { FakeEngine, settle, tensorInfo } from '../testing/fake-engine'
import { useCompressStore } from './compress'
import { OVERLAY_BINS, parseBitChoices, useCompressRunStore } from './compress-run'
import { useErrorStore } from './errors'
import { useModelStore } from './model'

const ct = (name: string, out: number, shape: [number, number] = [4, 4]): CompressedTensor => ({
  name,
  layer: 0,
  role: 'q',
  step: 0,
  method: 'rtn',
  format: 'w4 per-channel asym',
  shape,
  bitsPerWeight: 4 + 20 / shape[1],
  relWeightError: 0.1,
  relOutputError: out,
  sparsity: 0,
})

function summary(recipe = { steps: [{ method: 'rtn', params: { bits: 4 } }] }): CompressionSummary {
  return {
    compressedModelId: 'cm1',
    sourceModelId: 'id:/models/a',
    recipe,
    pplBefore: 4,
    pplBeforeReused: false,
    pplAfter: 4.4,
    pplAfterStep: [4.4],
    sparsity: 0,
    paramsBefore: 1000,
    paramsAfter: 1000,
    nonZeroParamsAfter: 1000,
    evalText: '/bundled/eval.txt',
    seqlen: 256,
    bitsPerWeight: 4.3,
    bytesBefore: 4000,
    bytesAfter: 1200,
    bytesDenseAfter: 4000,
    seconds: 3,
    tensors: [ct('small', 0.5, [2, 4]), ct('big', 0.2, [8, 16])],
  }
}

function detail(name: string, lo: number, hi: number, counts: number[]): TensorDetail {
  return {
    info: { ...tensorInfo, name },
    stats: {
      count: 16,
      min: lo,
      max: hi,
      mean: 0,
      std: 0.5,
      absmax: 1,
      kurtosis: 3,
      zeroFraction: 0,
      nanCount: 0,
      infCount: 0,
    },
    histogram: { lo, hi, counts, below: 0, above: 0 },
  }
}

let engine: FakeEngine

beforeEach(async () => {
  engine = new FakeEngine()
  provideApi(engine)
  setActivePinia(createPinia())
  await useModelStore().open('/models/a')
})

const specOf = (id: string): JobSpec => engine.started.find((s) => s.id === id)!.spec

/** Answers tensor jobs: the source over [-1, 1], the compressed one over whatever range it was given. */
function answerTensorJobs(): void {
  engine.onStart = (id, spec) => {
    if (spec.kind !== 'tensor') return
    const [lo, hi] = spec.range ?? [-1, 1]
    queueMicrotask(() =>
      engine.emit({
        id,
        kind: 'tensor',
        state: 'done',
        progress: 1,
        message: 'done',
        result: detail(spec.name, lo, hi, [1, 2, 3]),
      }),
    )
  }
}

describe('running a recipe', () => {
  it('a new run removes the previous result at once, and a cancelled run leaves none behind', async () => {
    const run = useCompressRunStore()
    answerTensorJobs()
    const first = run.run()
    await settle()
    engine.emit({ id: 'job1', kind: 'compress', state: 'done', progress: 1, message: 'done', result: summary() })
    await first
    expect(run.result?.recipe.steps[0].method).toBe('rtn')
    useCompressStore().apply({ steps: [{ method: 'wanda', params: { sparsity: 0.5 } }] })
    const second = run.run()
    expect(run.result).toBeNull()
    await settle()
    const id = engine.started.filter((s) => s.spec.kind === 'compress').at(-1)!.id
    expect(run.running).toBe(true)
    engine.emit({ id, kind: 'compress', state: 'cancelled', progress: 0.3, message: 'cancelled' })
    await second
    expect(run.result).toBeNull()
    expect(run.cancelled).toBe(true)
  })

  it('validates, sends the form with the recipe, and installs the summary', async () => {
    const run = useCompressRunStore()
    run.form.seqlen = 128
    run.form.maxEvalWindows = 64
    const done = run.run()
    await settle()
    expect(engine.checked).toHaveLength(1)
    expect(engine.started.map((s) => s.spec)).toEqual([
      { kind: 'compress', modelId: 'id:/models/a', recipe: useCompressStore().recipe, seqlen: 128, maxEvalWindows: 64 },
    ])
    expect(run.running).toBe(true)
    answerTensorJobs()
    engine.emit({ id: 'job1', kind: 'compress', state: 'done', progress: 1, message: 'done', result: summary() })
    await done
    expect(run.running).toBe(false)
    expect(run.result?.compressedModelId).toBe('cm1')
    expect(run.resultModelName).toBe('a')
    // A first target half a bit above what the run reached.
    expect(run.targetBpw).toBe(4.8)
  })

  it('overlays the most sensitive tensor: source first, then the compressed one on its range and bins', async () => {
    const run = useCompressRunStore()
    answerTensorJobs()
    engine.onStart = ((inner) => (id: string, spec: JobSpec) => {
      if (spec.kind === 'compress')
        queueMicrotask(() =>
          engine.emit({ id, kind: 'compress', state: 'done', progress: 1, message: 'done', result: summary() }),
        )
      else inner!(id, spec)
    })(engine.onStart)
    await run.run()
    await settle()
    await settle()
    // big: 0.2 × 128/136 beats small: 0.5 × 8/136.
    expect(run.sensitivity.map((r) => r.name)).toEqual(['big', 'small'])
    expect(specOf('job2')).toEqual({ kind: 'tensor', modelId: 'id:/models/a', name: 'big', bins: OVERLAY_BINS })
    expect(specOf('job3')).toEqual({ kind: 'tensor', modelId: 'cm1', name: 'big', bins: OVERLAY_BINS, range: [-1, 1] })
    expect(run.overlay).toMatchObject({ name: 'big', loading: false, failure: null })
    expect(run.overlay.after?.histogram.lo).toBe(-1)

    // Back to a tensor already seen: no new jobs.
    await run.showOverlay('small')
    await run.showOverlay('big')
    expect(engine.started).toHaveLength(5)
    expect(run.overlay.before?.info.name).toBe('big')
  })

  it('a check that overtakes the run’s own check is not a verdict: the run takes the newer one’s and starts', async () => {
    const run = useCompressRunStore()
    let open!: () => void
    engine.checkGate = new Promise((resolve) => (open = resolve))
    const done = run.run()
    await settle()
    // The tab's first-visit check (or an edit's) starts while the run's check is still out.
    const overtaking = useCompressStore().validate()
    engine.checkGate = null
    open()
    await overtaking
    await settle()
    expect(run.failure).toBeNull()
    expect(engine.started.map((s) => s.spec.kind)).toEqual(['compress'])
    // The run waits for the newer check's verdict instead of asking again.
    expect(engine.checked).toHaveLength(2)
    engine.emit({ id: 'job1', kind: 'compress', state: 'done', progress: 1, message: 'done', result: summary() })
    await done
    expect(run.result?.compressedModelId).toBe('cm1')
  })

  it('runs nothing when the recipe is invalid, and says why', async () => {
    useCompressStore().setParam(0, 'bits', 1)
    const run = useCompressRunStore()
    await run.run()
    expect(engine.started).toEqual([])
    expect(run.failure).toBe(
      'The recipe is not valid: recipe step 1 (rtn): params.bits must be an integer in [2, 8] (got 1)',
    )
    expect(run.running).toBe(false)
  })

  it('reports a failed run in the banner, and a cancel only inline', async () => {
    const run = useCompressRunStore()
    let p = run.run()
    await settle()
    engine.emit({
      id: 'job1',
      kind: 'compress',
      state: 'error',
      progress: 0.3,
      message: 'x',
      error: 'recipe step 1 (gptq) matches no Linear weight',
    })
    await p
    expect(run.failure).toBe('recipe step 1 (gptq) matches no Linear weight')
    expect(useErrorStore().errors).toHaveLength(1)
    p = run.run()
    await settle()
    await run.cancel()
    await p
    expect(engine.cancelled).toEqual(['job2'])
    expect(run).toMatchObject({ failure: 'Cancelled.', cancelled: true, running: false })
    expect(useErrorStore().errors).toHaveLength(1)
  })

  it('forgets the result when another model opens', async () => {
    const run = useCompressRunStore()
    engine.onStart = (id) =>
      queueMicrotask(() =>
        engine.emit({
          id,
          kind: 'compress',
          state: 'done',
          progress: 1,
          message: 'done',
          result: { ...summary(), tensors: [] },
        }),
      )
    await run.run()
    expect(run.result).not.toBeNull()
    await useModelStore().open('/models/b')
    await settle()
    expect(run.result).toBeNull()
  })
})

describe('mixed-precision proposal', () => {
  async function withResult(): Promise<ReturnType<typeof useCompressRunStore>> {
    const run = useCompressRunStore()
    engine.onStart = (id, spec) => {
      if (spec.kind === 'compress')
        queueMicrotask(() =>
          engine.emit({ id, kind: 'compress', state: 'done', progress: 1, message: 'done', result: summary() }),
        )
    }
    await run.run()
    return run
  }

  it('reads the bit choices a person types', () => {
    expect(parseBitChoices('8, 3 4;4  x 12 1')).toEqual([3, 4, 8])
  })

  it('follows the typed target and writes the proposal into the recipe as overrides', async () => {
    const run = await withResult()
    const compress = useCompressStore()
    // Per channel asym: big (128 weights, 16 cols) costs 3 + 19/16 or 8 + 24/16; small (8, 4 cols) 3 + 19/4 or 8 + 24/4.
    // Both at 3 bits average 598/136 = 4.40. Upgrading small adds 50 bit-weights and removes
    // (8/136)(1 − 1/32) of sensitivity, 1.1e-3 per bit; big adds 680 for 5.4e-4 per bit. Small goes
    // first (4.76); big then would reach 9.76 > 9.5.
    run.targetBpw = 9.5
    run.bitChoices = '3, 8'
    expect(run.proposal?.assignments.map((a) => [a.name, a.bits])).toEqual([
      ['big', 3],
      ['small', 8],
    ])
    expect(run.proposal!.bitsPerWeight).toBeCloseTo((128 * (3 + 19 / 16) + 8 * 14) / 136, 12)
    run.targetBpw = 9.8
    expect(run.proposal?.assignments.map((a) => [a.name, a.bits])).toEqual([
      ['big', 8],
      ['small', 8],
    ])
    run.targetBpw = 9.5
    expect(run.acceptProposal()).toBe(true)
    expect(compress.recipe.overrides).toEqual({ big: { bits: 3 }, small: { bits: 8 } })
    expect(run.acceptNote).toContain('overrides')
    run.targetBpw = ''
    expect(run.proposal).toBeNull()
  })

  it("refuses to accept once the recipe's steps no longer match the run", async () => {
    const run = await withResult()
    const compress = useCompressStore()
    compress.setMethod(0, 'gptq')
    expect(run.acceptProposal()).toBe(false)
    expect(compress.recipe.overrides).toBeUndefined()
    expect(run.acceptNote).toContain('step 1')
  })
})
