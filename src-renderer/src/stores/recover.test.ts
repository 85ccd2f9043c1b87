import { beforeEach, describe, expect, it } from 'vitest'
import { createPinia, setActivePinia } from 'pinia'
import type { CompressionSummary, JobUpdate, TrainingProgress } from '@contract/api'
import { choiceParam, intParam, numberParam, stringParam, type MethodInfo } from '@contract/method-params'
import { provideApi } from '../bridge'
import { FakeEngine, settle } from '../testing/fake-engine'
import { TEST_CATALOGUE } from '../testing/method-catalogue'
import { useModelStore } from './model'
import { appendTraining, EMPTY_CURVE, formSpecs, recoverRecipe, useRecoverStore } from './recover'

/** distill and lora as the catalogue declares them (a subset of their params, same names). */
const CATALOGUE: MethodInfo[] = [
  ...TEST_CATALOGUE,
  {
    name: 'distill',
    kind: 'recover',
    summary: 'Knowledge distillation',
    needsCalibration: true,
    params: [
      intParam('steps', 200, 1, 1e7, 'Optimizer steps'),
      intParam('batch_size', 8, 1, 4096, 'Windows per step'),
      intParam('seqlen', 256, 2, 65536, 'Tokens per window'),
      numberParam('lr', 1e-4, 1e-12, 10, 'Peak learning rate'),
      numberParam('temperature', 2, 1e-3, 1000, 'T'),
      numberParam('alpha', 0.5, 0, 1, 'KL weight'),
      choiceParam('trainable', 'linears', ['linears', 'lora'], 'What trains'),
      intParam('eval_every', 0, 0, 1e7, 'Eval period'),
      stringParam('eval_text', 'Eval text'),
      intParam('eval_windows', 0, 0, 1 << 24, 'Eval windows'),
      intParam('seed', 0, 0, 2 ** 31 - 1, 'Seed'),
    ],
  },
  {
    name: 'lora',
    kind: 'recover',
    summary: 'LoRA',
    needsCalibration: true,
    params: [
      intParam('r', 8, 1, 4096, 'Rank'),
      numberParam('alpha', 16, 1e-6, 1e6, 'Scale numerator'),
      intParam('steps', 200, 1, 1e7, 'Optimizer steps'),
      intParam('batch_size', 8, 1, 4096, 'Windows per step'),
      intParam('seqlen', 256, 2, 65536, 'Tokens per window'),
      numberParam('lr', 2e-4, 1e-12, 10, 'Learning rate'),
      choiceParam('base', 'auto', ['auto', 'dense', 'nf4'], 'Frozen base'),
    ],
  },
]

const step = (n: number, loss = 3 - n / 10) => ({
  step: n,
  loss,
  ce: loss,
  kl: 0,
  tokensPerSecond: 500,
  etaSeconds: 4 - n,
})
const training = (steps: number[], evals: [number, number][] = []): TrainingProgress => ({
  totalSteps: 4,
  steps: steps.map((n) => step(n)),
  evals: evals.map(([s, ppl]) => ({ step: s, ppl })),
})

describe('recover recipe', () => {
  it('builds the form from the catalogue, in the kind’s order, leaving out what the catalogue lacks', () => {
    expect(formSpecs(CATALOGUE, 'kd').map((s) => s.name)).toEqual([
      'steps',
      'lr',
      'temperature',
      'alpha',
      'trainable',
      'eval_every',
      'batch_size',
      'seqlen',
    ])
    expect(formSpecs(CATALOGUE, 'qlora').map((s) => s.name)).toEqual([
      'r',
      'alpha',
      'steps',
      'lr',
      'batch_size',
      'seqlen',
    ])
    expect(formSpecs(TEST_CATALOGUE, 'kd')).toEqual([])
  })

  it('KD: a distill step with the given params only, eval text added when eval_every is set', () => {
    const base = { kind: 'kd' as const, targets: '', evalText: '/t/eval.txt', evalWindows: 4 }
    expect(recoverRecipe(CATALOGUE, { ...base, values: { steps: 3, lr: '', alpha: null, seed: 7 } })).toEqual({
      steps: [{ method: 'distill', params: { steps: 3 } }],
    })
    expect(recoverRecipe(CATALOGUE, { ...base, values: { steps: 3, eval_every: 1 } })).toEqual({
      steps: [{ method: 'distill', params: { steps: 3, eval_every: 1, eval_text: '/t/eval.txt', eval_windows: 4 } }],
    })
  })

  it('QLoRA: a lora step on an NF4 base; targets become include regexes', () => {
    const r = recoverRecipe(CATALOGUE, {
      kind: 'qlora',
      values: { r: 4, steps: 2 },
      targets: 'self_attn\\.q_proj, mlp\\..*\n',
      evalText: null,
      evalWindows: null,
    })
    expect(r).toEqual({
      steps: [
        {
          method: 'lora',
          targets: { include: ['self_attn\\.q_proj', 'mlp\\..*'] },
          params: { r: 4, steps: 2, base: 'nf4' },
        },
      ],
    })
  })
})

describe('training curve', () => {
  it('appends steps and evals in order and keeps each step once', () => {
    let c = appendTraining(EMPTY_CURVE, training([1, 2], []))
    c = appendTraining(c, training([3], [[2, 9]]))
    expect(c.steps.map((s) => s.step)).toEqual([1, 2, 3])
    // A repeated batch (the final update re-sent) and a late step land once, in order.
    c = appendTraining(
      c,
      training(
        [2, 4],
        [
          [2, 9],
          [4, 8],
        ],
      ),
    )
    expect(c.steps.map((s) => s.step)).toEqual([1, 2, 3, 4])
    expect(c.evals).toEqual([
      { step: 2, ppl: 9 },
      { step: 4, ppl: 8 },
    ])
    expect(c.totalSteps).toBe(4)
  })
})

describe('recover store', () => {
  let engine: FakeEngine

  beforeEach(async () => {
    engine = new FakeEngine()
    engine.methods = CATALOGUE
    provideApi(engine)
    setActivePinia(createPinia())
    await useModelStore().open('/models/a')
  })

  const update = (id: string, u: Partial<JobUpdate>): JobUpdate =>
    ({ id, kind: 'compress', state: 'running', progress: 0.5, message: 'training', ...u }) as JobUpdate

  it('runs a KD step on the open model, gathers every step (also those ahead of the id), pauses and resumes', async () => {
    const recover = useRecoverStore()
    // An update that overtakes startJob's answer still counts.
    engine.onStart = (id) => engine.emit(update(id, { training: training([1]) }))
    recover.values.kd = { steps: 4 }
    const running = recover.run()
    await settle()
    await settle()
    const started = engine.started[0]
    expect(started.spec).toMatchObject({
      kind: 'compress',
      modelId: 'id:/models/a',
      recipe: { steps: [{ method: 'distill', params: { steps: 4 } }] },
    })
    const id = started.id
    expect(recover.running).toBe(true)
    // Two updates between renders: neither's points may be lost.
    engine.emit(update(id, { training: training([2]) }))
    engine.emit(update(id, { training: training([3], [[3, 12.5]]) }))
    expect(recover.curve.steps.map((s) => s.step)).toEqual([1, 2, 3])
    expect(recover.latest?.step).toBe(3)
    expect(recover.curve.evals).toEqual([{ step: 3, ppl: 12.5 }])

    await recover.pause()
    engine.emit(update(id, { paused: true }))
    expect(recover.paused).toBe(true)
    await recover.resume()
    engine.emit(update(id, { paused: false }))
    expect(recover.paused).toBe(false)
    expect(engine.pauses).toEqual([`pause:${id}`, `resume:${id}`])

    // Another job's training numbers are not this run's.
    engine.emit(update('other', { training: training([4]) }))
    expect(recover.curve.steps).toHaveLength(3)

    const result = { compressedModelId: 'cm2', pplBefore: 20, pplAfter: 9 } as CompressionSummary
    engine.emit(update(id, { state: 'done', progress: 1, result, training: training([4]) }))
    await running
    expect(recover.running).toBe(false)
    expect(recover.curve.steps.map((s) => s.step)).toEqual([1, 2, 3, 4])
    expect(recover.result?.compressedModelId).toBe('cm2')
    expect(recover.subjects?.compressed).toBe(false)
  })

  it('cancel ends the run without a result; pause after the end does nothing', async () => {
    const recover = useRecoverStore()
    const running = recover.run()
    await settle()
    await settle()
    const id = engine.started[0].id
    await recover.cancel()
    await running
    expect(engine.cancelled).toEqual([id])
    expect(recover.cancelled).toBe(true)
    expect(recover.result).toBeNull()
    await recover.pause()
    expect(engine.pauses).toEqual([])
  })
})

describe('ternary QAT as a recovery kind', () => {
  it('runs distill with qat: ternary on the Linears, sending only the params its form shows', () => {
    const catalogue = [
      {
        name: 'distill',
        kind: 'recover' as const,
        summary: '',
        needsCalibration: true,
        params: ['steps', 'lr', 'trainable', 'qat', 'r'].map((name) => ({
          name,
          type: 'number' as const,
          default: null,
          min: 0,
          max: 1e9,
          help: '',
        })),
      },
    ]
    const recipe = recoverRecipe(catalogue as never, {
      kind: 'ternary-qat',
      values: { steps: 50, lr: 0.002, r: 8 },
      targets: '',
      evalText: null,
      evalWindows: null,
    })
    expect(recipe.steps).toHaveLength(1)
    expect(recipe.steps[0].method).toBe('distill')
    expect(recipe.steps[0].params).toMatchObject({ steps: 50, lr: 0.002, qat: 'ternary', trainable: 'linears' })
    expect(recipe.steps[0].params).not.toHaveProperty('r')
  })
})
