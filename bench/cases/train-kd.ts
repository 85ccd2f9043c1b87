// Knowledge distillation on stories260K, the issue #12 protocol: the Wanda-50% student, the original as
// teacher, batches of 8 sequential 256-token windows of the calibration ids, AdamW lr 1e-3, T 2, α 0.5,
// 200 steps (BENCH_KD_STEPS shortens it), 2 workers. Tokens/s over the steps after the first (which
// includes warming up), the whole run's wall time against PyTorch's 294 s for the same 200 steps on one
// CPU thread, and peak RSS. Needs ../shared (the reference student and ids); says so and emits nothing
// without it.

import { readFileSync } from 'node:fs'
import { loadModel } from '../../src-main/engine/model/loaded-model'
import { WorkerPool } from '../../src-main/engine/pool/worker-pool'
import { hasShared, referenceIds, shared, SKIP_SHARED } from '../../src-main/engine/testing/shared-data'
import { ADAMW_DEFAULTS } from '../../src-main/engine/train/adamw'
import { LlamaTrainer } from '../../src-main/engine/train/llama-trainer'
import { wandaStudent } from '../../src-main/engine/train/testing/reference-protocol'
import { train } from '../../src-main/engine/train/train-loop'
import { emit, peakRss } from '../rows'

const STEPS = Number(process.env.BENCH_KD_STEPS ?? 200)
const SEQLEN = 256,
  BATCH = 8

if (!hasShared) {
  process.stderr.write(`bench train-kd: ${SKIP_SHARED}\n`)
} else {
  const teacher = await loadModel(shared('models/stories260K'))
  const pool = await WorkerPool.create({ threads: 2 })
  try {
    const trainer = await LlamaTrainer.create(pool, await wandaStudent(teacher), teacher, SEQLEN, {
      temperature: 2,
      alpha: 0.5,
    })
    try {
      const r = await train(trainer, referenceIds('tinystories_calib'), {
        steps: STEPS,
        batchSize: BATCH,
        order: 'sequential',
        seed: 0,
        lr: 1e-3,
        schedule: 'constant',
        warmupSteps: 0,
        optimizer: ADAMW_DEFAULTS,
        maxGradNorm: 0,
      })
      const rest = r.steps.slice(1)
      const seconds = rest.length ? rest[rest.length - 1].seconds - r.steps[0].seconds : r.seconds
      const tokens = rest.length ? rest.length * BATCH * SEQLEN : r.tokens
      const torchSeconds = (
        JSON.parse(readFileSync(shared('reference/training/reference-training.json'), 'utf8')) as {
          runs: { kd_wanda50: { train_seconds: number; steps: number } }
        }
      ).runs.kd_wanda50
      const torchForSteps = (torchSeconds.train_seconds * STEPS) / torchSeconds.steps
      emit({
        case: `KD training, stories260K Wanda-50% student, ${STEPS} steps × ${BATCH} × ${SEQLEN} tokens (issue protocol)`,
        variant: 'full KD, 35 Linears, 2 workers',
        measure: 'tokens/s; wall time',
        value: `${(tokens / seconds).toFixed(0)} tok/s; ${r.seconds.toFixed(1)} s`,
        ratio: `${(torchForSteps / r.seconds).toFixed(2)}x vs PyTorch 1 thread (${torchForSteps.toFixed(0)} s); kernel peak ${(r.peakKernelBytes / 2 ** 20).toFixed(1)} MiB`,
        peakRss: peakRss(),
      })
    } finally {
      trainer.free()
    }
  } finally {
    await pool.close()
  }
}
