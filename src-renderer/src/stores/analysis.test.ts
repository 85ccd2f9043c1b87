import { beforeEach, describe, expect, it } from 'vitest'
import { createPinia, setActivePinia } from 'pinia'
import type { ActivationReport, HeadImportance, JobOutcome, LayerImportance, PerplexityReport } from '@contract/api'
import { provideApi } from '../bridge'
import { FakeEngine, settle } from '../testing/fake-engine'
import { useAnalysisStore } from './analysis'
import { useErrorStore } from './errors'
import { useInspectStore } from './inspect'
import { subjectOf, useJobStore } from './jobs'
import { useModelStore } from './model'

function pplReport(ppl: number, seqlen = 256): PerplexityReport {
  return {
    ppl,
    meanNll: Math.log(ppl),
    protocol: 'gptq',
    tokens: 5000,
    windows: 19,
    seqlen,
    tokensPerSecond: 900,
    seconds: 5.4,
    text: '/bundled/eval.txt',
  }
}

const activationReport: ActivationReport = {
  threshold: 6,
  samples: 128,
  seqlen: 256,
  tokens: 32768,
  inputs: [{ layer: 0, group: 'qkv', absmax: [1, 7], meanAbs: [0.2, 0.5], meanSq: [0.1, 2], outliers: [1] }],
  persistence: { channels: 2, inputs: 1, counts: [0, 1] },
  alphas: [0, 0.5, 1],
  smoothing: [],
}

const headReport: HeadImportance = {
  layers: 1,
  heads: 2,
  samples: 16,
  seqlen: 256,
  baselineNll: 1.5,
  ablation: [[0.1, 0.2]],
  proxy: [[1, 2]],
  rankCorrelation: 1,
}

const layerReport: LayerImportance = {
  samples: 16,
  seqlen: 256,
  baselineNll: 1.5,
  angularDistance: [0.2],
  skipDelta: [2.4],
}

let engine: FakeEngine

beforeEach(() => {
  engine = new FakeEngine()
  provideApi(engine)
  setActivePinia(createPinia())
})

async function withModel(path = '/models/a'): Promise<void> {
  await useModelStore().open(path)
}

/** Finishes the job with `id` the way the engine does: done, with a kind and a result of that kind. */
function finish(id: string, outcome: JobOutcome): void {
  engine.emit({ id, state: 'done', progress: 1, message: 'done', ...outcome })
}

const ppl = (value: number, seqlen?: number): JobOutcome => ({ kind: 'perplexity', result: pplReport(value, seqlen) })
const activationsDone: JobOutcome = { kind: 'activations', result: activationReport }
const headsDone: JobOutcome = { kind: 'heads', result: headReport }
const layersDone: JobOutcome = { kind: 'layers', result: layerReport }

describe('perplexity', () => {
  it('sends the form as a spec, shows the result and records the run with its model', async () => {
    await withModel()
    const analysis = useAnalysisStore()
    analysis.pplForm.seqlen = 512
    analysis.pplForm.maxWindows = 10
    const done = analysis.runPerplexity()
    await settle()
    expect(analysis.perplexity.running).toBe(true)
    expect(engine.started.map((s) => s.spec)).toEqual([
      { kind: 'perplexity', modelId: 'id:/models/a', seqlen: 512, maxWindows: 10 },
    ])
    finish('job1', ppl(4.13, 512))
    await done
    expect(analysis.perplexity.running).toBe(false)
    expect(analysis.perplexity.result?.ppl).toBe(4.13)
    expect(analysis.history).toEqual([
      expect.objectContaining({
        modelName: 'a',
        modelPath: '/models/a',
        text: '/bundled/eval.txt',
        seqlen: 512,
        windows: 19,
        ppl: 4.13,
      }),
    ])
  })

  it('keeps the history across models but drops the result, so before and after can be compared', async () => {
    await withModel('/models/orig')
    const analysis = useAnalysisStore()
    engine.onStart = (id) => queueMicrotask(() => finish(id, ppl(4)))
    await analysis.runPerplexity()
    await withModel('/models/q4')
    await settle()
    expect(analysis.perplexity.result).toBeNull()
    engine.onStart = (id) => queueMicrotask(() => finish(id, ppl(4.3)))
    await analysis.runPerplexity()
    expect(analysis.history.map((r) => [r.modelName, r.ppl])).toEqual([
      ['orig', 4],
      ['q4', 4.3],
    ])
  })

  it('replaces a run still in progress: the old job is cancelled and its late result ignored', async () => {
    await withModel()
    const analysis = useAnalysisStore()
    // The old job finishes before the cancel reaches it.
    engine.confirmCancel = false
    const first = analysis.runPerplexity()
    await settle()
    analysis.pplForm.seqlen = 128
    const second = analysis.runPerplexity()
    await settle()
    expect(engine.cancelled).toEqual(['job1'])
    finish('job1', ppl(99))
    finish('job2', ppl(4.4, 128))
    await Promise.all([first, second])
    expect(analysis.perplexity.result?.ppl).toBe(4.4)
    expect(analysis.history.map((r) => r.ppl)).toEqual([4.4])
  })

  it('shows a failed job inline and in the banner', async () => {
    await withModel()
    const analysis = useAnalysisStore()
    const p = analysis.runPerplexity()
    await settle()
    engine.emit({
      id: 'job1',
      kind: 'perplexity',
      state: 'error',
      progress: 0.1,
      message: 'x',
      error: '/data/t.txt: no such text file',
    })
    await p
    expect(analysis.perplexity.failure).toBe('/data/t.txt: no such text file')
    expect(analysis.perplexity.cancelled).toBe(false)
    expect(useErrorStore().errors.map((e) => e.message)).toEqual(['/data/t.txt: no such text file'])
    expect(analysis.history).toEqual([])
  })

  it('reports a refused start (a relative text path) without leaving the run spinning', async () => {
    await withModel()
    const analysis = useAnalysisStore()
    engine.refuseStart = 'startJob: path must be absolute: t.txt'
    analysis.pplForm.text = 't.txt'
    await analysis.runPerplexity()
    expect(analysis.perplexity.running).toBe(false)
    expect(analysis.perplexity.failure).toContain('path must be absolute')
    expect(useErrorStore().errors).toHaveLength(1)
  })

  it('cancels on request; a cancel is no error', async () => {
    await withModel()
    const analysis = useAnalysisStore()
    const p = analysis.runPerplexity()
    await settle()
    await analysis.cancel('perplexity')
    await p
    expect(engine.cancelled).toEqual(['job1'])
    expect(analysis.perplexity.running).toBe(false)
    expect(analysis.perplexity.failure).toBe('Cancelled.')
    expect(analysis.perplexity.cancelled).toBe(true)
    expect(useErrorStore().errors).toEqual([])
  })

  it('does nothing without a model', async () => {
    await useAnalysisStore().runPerplexity()
    expect(engine.started).toEqual([])
  })

  it('tells the job bar which text and seqlen a run is about', async () => {
    expect(subjectOf({ kind: 'perplexity', modelId: 'm', seqlen: 512 })).toBe('bundled eval text · seqlen 512')
    expect(subjectOf({ kind: 'perplexity', modelId: 'm', text: '/d/wiki.txt' })).toBe('wiki.txt · seqlen 256')
    expect(subjectOf({ kind: 'heads', modelId: 'm', calibration: { samples: 16, seqlen: 256 } })).toBe(
      'calibration 16 × 256',
    )
    await withModel()
    const id = await useJobStore().start({ kind: 'layers', modelId: 'm', calibration: { samples: 4, seqlen: 32 } })
    expect(useJobStore().subjects.get(id)).toBe('calibration 4 × 32')
  })
})

describe('activations, heads and layers', () => {
  it('runs each with its calibration defaults and keeps each result in its own slot', async () => {
    await withModel()
    const analysis = useAnalysisStore()
    engine.onStart = (id, spec) => {
      const outcome = [activationsDone, headsDone, layersDone].find((o) => o.kind === spec.kind)
      if (outcome) queueMicrotask(() => finish(id, outcome))
    }
    await analysis.runActivations()
    await analysis.runHeads()
    await analysis.runLayers()
    expect(engine.started.map((s) => s.spec)).toEqual([
      { kind: 'activations', modelId: 'id:/models/a', threshold: 6, calibration: { samples: 128, seqlen: 256 } },
      { kind: 'heads', modelId: 'id:/models/a', calibration: { samples: 16, seqlen: 256 } },
      { kind: 'layers', modelId: 'id:/models/a', calibration: { samples: 16, seqlen: 256 } },
    ])
    expect(analysis.activations.result).toEqual(activationReport)
    expect(analysis.heads.result).toEqual(headReport)
    expect(analysis.layers.result).toEqual(layerReport)
  })

  it('refuses a result of the wrong kind instead of drawing it', async () => {
    await withModel()
    const analysis = useAnalysisStore()
    engine.onStart = (id) => queueMicrotask(() => finish(id, layersDone))
    await analysis.runHeads()
    expect(analysis.heads.result).toBeNull()
    expect(analysis.heads.failure).toContain('no heads result')
  })

  it('cancels what runs when another model opens, drops every result, and stays on the analysis tab', async () => {
    await withModel()
    const analysis = useAnalysisStore()
    const inspect = useInspectStore()
    inspect.tab = 'heads'
    engine.onStart = (id, spec) => {
      if (spec.kind === 'layers') queueMicrotask(() => finish(id, layersDone))
    }
    await analysis.runLayers()
    const heads = analysis.runHeads()
    await settle()
    // The heads job ends with a result just as the new model opens: it belongs to the old model.
    engine.confirmCancel = false
    await withModel('/models/b')
    await settle()
    expect(engine.cancelled).toEqual(['job2'])
    finish('job2', headsDone)
    await heads
    expect(analysis.layers.result).toBeNull()
    expect(analysis.heads.running).toBe(false)
    expect(analysis.heads.result).toBeNull()
    expect(inspect.tab).toBe('heads')
  })

  it('clamps absurd form values to what the engine accepts', async () => {
    await withModel()
    const analysis = useAnalysisStore()
    analysis.activationForm.threshold = -1
    analysis.activationForm.samples = 0
    analysis.activationForm.seqlen = ''
    void analysis.runActivations()
    await settle()
    expect(engine.started[0].spec).toEqual({
      kind: 'activations',
      modelId: 'id:/models/a',
      threshold: 0,
      calibration: { samples: 1, seqlen: 256 },
    })
  })
})

describe('head weights', () => {
  it('asks the engine for the chosen head of the open model', async () => {
    await withModel()
    const analysis = useAnalysisStore()
    await analysis.selectHead({ layer: 3, head: 5 })
    expect(engine.headRequests).toEqual([{ modelId: 'id:/models/a', layer: 3, head: 5 }])
    expect(analysis.selectedHead).toEqual({ layer: 3, head: 5 })
    expect(analysis.headWeights?.slices.map((s) => s.role)).toEqual(['q', 'k', 'v', 'o'])
    expect(analysis.headWeights?.slices[0].values).toEqual([3, -5])
    // Choosing it again reuses what is shown.
    await analysis.selectHead({ layer: 3, head: 5 })
    expect(engine.headRequests).toHaveLength(1)
  })

  it('shows the newest choice even when an earlier request answers later', async () => {
    await withModel()
    const analysis = useAnalysisStore()
    let release!: () => void
    engine.headGates.set('0/1', new Promise((r) => (release = r)))
    const slow = analysis.selectHead({ layer: 0, head: 1 })
    await analysis.selectHead({ layer: 2, head: 0 })
    release()
    await slow
    expect(analysis.selectedHead).toEqual({ layer: 2, head: 0 })
    expect(analysis.headWeights).toMatchObject({ layer: 2, head: 0 })
    expect(analysis.headWeightsLoading).toBe(false)
  })

  it('reports a refused request in the banner and inline', async () => {
    await withModel()
    const analysis = useAnalysisStore()
    await analysis.selectHead({ layer: 100, head: 0 })
    expect(analysis.headWeights).toBeNull()
    expect(analysis.headWeightsFailure).toContain('outside')
    expect(useErrorStore().errors).toHaveLength(1)
  })

  it('forgets the head when another model opens', async () => {
    await withModel()
    const analysis = useAnalysisStore()
    await analysis.selectHead({ layer: 1, head: 1 })
    await withModel('/models/b')
    await settle()
    expect(analysis.selectedHead).toBeNull()
    expect(analysis.headWeights).toBeNull()
  })
})
