// Issue #12's relation target: knowledge distillation of a student with one decoder block dropped
// recovers most of what the drop cost. The cost and the recovery are measured against the teacher's own
// perplexity: recovered = (ppl_dropped − ppl_after) / (ppl_dropped − ppl_teacher).
// The full run (the protocol: 200 steps × 8 × 256 sequential windows of the calibration text,
// lr 1e-3, T 2, α 0.5, eval on the whole tinystories_eval at seqlen 256) runs with WHITTLE_SLOW=1 and must
// recover more than half (measured 2026-12-03: teacher 5.139, block 2 dropped 11.518, after 5.887, so 88%
// recovered; 9 min on the shared 2-core machine). The smoke variant (12 short steps, eval on 16 windows)
// must recover more than a quarter (measured: 46%).

import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { perplexity } from '../../eval/perplexity'
import { loadModel, type LoadedModel } from '../../model/loaded-model'
import { WorkerPool } from '../../pool/worker-pool'
import { hasShared, referenceIds, shared, SKIP_SHARED } from '../../testing/shared-data'
import { scaled } from '../../testing/time-factor'
import { runRecipe } from '../pipeline'
import { validateRecipe } from '../recipe/recipe'

const SLOW = process.env.WHITTLE_SLOW === '1'

interface Recovery {
  teacher: number
  dropped: number
  after: number
  recovered: number
}

async function dropAndDistill(
  pool: WorkerPool,
  model: LoadedModel,
  distill: Record<string, unknown>,
  evalOptions: { seqlen: number; maxWindows?: number },
): Promise<Recovery> {
  const evalIds = referenceIds('tinystories_eval')
  const ppl = async (m: LoadedModel): Promise<number> => (await perplexity(pool, m, evalIds, evalOptions)).ppl
  // Block 2 of 5: a middle block, so that the drop costs something that training can win back.
  const dropped = await runRecipe(
    pool,
    model,
    validateRecipe({ steps: [{ method: 'drop_layers', params: { layers: [2] } }] }),
  )
  const r = await runRecipe(
    pool,
    dropped.view,
    validateRecipe({
      steps: [
        {
          method: 'distill',
          // The teacher is the undropped model (the student's file is still the original's).
          params: { ...distill, text: shared('text/tinystories_calib.txt'), order: 'sequential' },
        },
      ],
    }),
  )
  const teacher = await ppl(model),
    before = await ppl(dropped.view),
    after = await ppl(r.view)
  return { teacher, dropped: before, after, recovered: (before - after) / (before - teacher) }
}

describe.skipIf(!hasShared)(`KD after dropping a block (${hasShared ? 'reference data present' : SKIP_SHARED})`, () => {
  let pool: WorkerPool
  let model: LoadedModel

  beforeAll(async () => {
    pool = await WorkerPool.create({ threads: 2 })
    model = await loadModel(shared('models/stories260K'))
  })
  afterAll(() => pool?.close())

  it(
    'smoke: a few KD steps win back part of what the drop cost',
    async () => {
      const r = await dropAndDistill(
        pool,
        model,
        { steps: 12, batch_size: 4, seqlen: 128, lr: 1e-3, temperature: 2, alpha: 0.5 },
        { seqlen: 128, maxWindows: 16 },
      )
      console.log(`drop-block KD smoke: ${JSON.stringify(r)}`)
      expect(r.dropped).toBeGreaterThan(r.teacher * 1.1) // the drop costs something
      expect(r.recovered).toBeGreaterThan(0.25)
    },
    scaled(180_000),
  )

  it.skipIf(!SLOW)(
    'the protocol run (WHITTLE_SLOW=1): 200 KD steps recover more than half of the drop',
    async () => {
      const r = await dropAndDistill(
        pool,
        model,
        {
          steps: 200,
          batch_size: 8,
          seqlen: 256,
          lr: 1e-3,
          schedule: 'constant',
          optimizer: { name: 'adamw', beta1: 0.9, beta2: 0.999, eps: 1.0e-8, weight_decay: 0 },
          temperature: 2,
          alpha: 0.5,
        },
        { seqlen: 256 },
      )
      console.log(`drop-block KD (200 steps): ${JSON.stringify(r)}`)
      expect(r.recovered).toBeGreaterThan(0.5)
    },
    scaled(3_600_000),
  )
})
