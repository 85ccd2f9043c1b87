// The reference training runs end to end (../shared/reference/training/reference-training.json): 200 AdamW
// steps (lr 1e-3 constant, betas 0.9/0.999, eps 1e-8, no decay, no clipping) on the Wanda-50% student,
// batches of windows 8s..8s+7 of the calibration ids, once as KD (T 2, α 0.5) and once on the
// cross-entropy alone. Each must land within +2% of PyTorch's perplexity (lower is fine) with exactly half
// the block weights still zero, its loss curve must follow PyTorch's, and KD must beat plain fine-tuning.
// Takes minutes on a shared CPU: runs only when WHITTLE_SLOW=1 (WHITTLE_KD_STEPS shortens it for a look).

import { readFileSync } from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { perplexity } from '../eval/perplexity'
import { loadModel, type LoadedModel } from '../model/loaded-model'
import { WorkerPool } from '../pool/worker-pool'
import { hasShared, referenceIds, shared } from '../testing/shared-data'
import { ADAMW_DEFAULTS } from './adamw'
import { LlamaTrainer } from './llama-trainer'
import { wandaStudent } from './testing/reference-protocol'
import { train, type TrainResult } from './train-loop'
import { scaled } from '../testing/time-factor'

const slow = process.env.WHITTLE_SLOW === '1'
const STEPS = Number(process.env.WHITTLE_KD_STEPS ?? 200)

interface RefRun {
  ppl_before: number
  ppl_after: number
  nonzero_fraction: number
  train_seconds: number
  curve_every_10: { step: number; loss: number }[]
}

interface Outcome {
  result: TrainResult
  ppl: number
  nonzero: number
}

describe.skipIf(!hasShared || !slow)('the reference KD and CE runs on the Wanda-50% student (WHITTLE_SLOW=1)', () => {
  let pool: WorkerPool
  let teacher: LoadedModel
  const outcomes = new Map<string, Outcome>()
  const ref = (run: string): RefRun =>
    (
      JSON.parse(readFileSync(shared('reference/training/reference-training.json'), 'utf8')) as {
        runs: Record<string, RefRun>
      }
    ).runs[run]

  beforeAll(async () => {
    pool = await WorkerPool.create({ threads: 2 })
    teacher = await loadModel(shared('models/stories260K'))
  })
  afterAll(() => pool?.close())

  async function run(name: string, alpha: number): Promise<Outcome> {
    const student = await wandaStudent(teacher)
    const trainer = await LlamaTrainer.create(pool, student, alpha > 0 ? teacher : null, 256, { temperature: 2, alpha })
    let result: TrainResult
    let zeros = 0,
      numel = 0
    try {
      result = await train(trainer, referenceIds('tinystories_calib'), {
        steps: STEPS,
        batchSize: 8,
        order: 'sequential',
        seed: 0,
        lr: 1e-3,
        schedule: 'constant',
        warmupSteps: 0,
        optimizer: ADAMW_DEFAULTS,
        maxGradNorm: 0,
      })
      for (const [tensor, w] of trainer.weights()) {
        student.replace(tensor, w)
        for (const x of w) if (x === 0) zeros++
        numel += w.length
      }
    } finally {
      trainer.free()
    }
    const ppl = (await perplexity(pool, student, referenceIds('tinystories_eval'), { seqlen: 256 })).ppl
    const r = ref(name)
    console.log(
      `${name} ${STEPS} steps: ppl ${ppl.toFixed(4)} (PyTorch ${r.ppl_after.toFixed(4)}), ${result.seconds.toFixed(1)} s ` +
        `(PyTorch ${r.train_seconds.toFixed(0)} s), ${(result.tokens / result.seconds).toFixed(0)} tok/s, ` +
        `peak kernel memory ${(result.peakKernelBytes / 2 ** 20).toFixed(1)} MiB (AdamW state ${(result.optimizerBytes / 2 ** 20).toFixed(2)} MiB)`,
    )
    const outcome = { result, ppl, nonzero: 1 - zeros / numel }
    outcomes.set(name, outcome)
    return outcome
  }

  function check(name: string, o: Outcome): void {
    const r = ref(name)
    for (const point of r.curve_every_10.filter((p) => p.step < STEPS)) {
      const mine = o.result.steps[point.step].loss
      expect(Math.abs(mine / point.loss - 1), `${name} step ${point.step}: ${mine} vs ${point.loss}`).toBeLessThan(
        point.step === 0 ? 1e-5 : 0.02,
      )
    }
    if (STEPS === 200) expect(o.ppl).toBeLessThanOrEqual(r.ppl_after * 1.02)
    expect(o.ppl).toBeLessThan(r.ppl_before)
    expect(o.nonzero).toBe(r.nonzero_fraction)
  }

  it(
    'KD: loss curve, perplexity within +2% of 5.9972, nonzero fraction exactly 0.5',
    async () => {
      check('kd_wanda50', await run('kd_wanda50', 0.5))
    },
    scaled(1_800_000),
  )

  it(
    'CE alone: loss curve, perplexity within +2% of 6.5339, nonzero fraction exactly 0.5',
    async () => {
      check('ce_wanda50', await run('ce_wanda50', 0))
    },
    scaled(1_800_000),
  )

  it('KD beats plain fine-tuning', () => {
    const kd = outcomes.get('kd_wanda50'),
      ce = outcomes.get('ce_wanda50')
    expect(kd && ce).toBeTruthy()
    expect(kd!.ppl).toBeLessThan(ce!.ppl)
  })
})
