// Step 0 of the reference distillation run (../shared/reference/training): the Wanda-50% student
// (wanda_50.safetensors over stories260K), the original stories260K as teacher, windows 0..7 of the
// calibration ids cut into 256-token windows, T = 2, α = 0.5. The loss, CE and KL must match PyTorch's
// within 1e-5 relative, and every masked Linear gradient within 1e-4 relative Frobenius norm.

import { readFileSync } from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openModelFiles } from '../formats/open'
import { readTensorF32 } from '../formats/read'
import { loadModel } from '../model/loaded-model'
import { WorkerPool } from '../pool/worker-pool'
import { hasShared, referenceIds, shared, SKIP_SHARED } from '../testing/shared-data'
import { LlamaTrainer } from './llama-trainer'
import { referenceWindow, wandaStudent } from './testing/reference-protocol'

interface StepLoss {
  loss: number
  ce: number
  kl: number
}

describe.skipIf(!hasShared)('distillation step 0 against PyTorch (reference data present)', () => {
  let pool: WorkerPool
  let trainer: LlamaTrainer
  let sums: { ce: number; kl: number; predictions: number }

  beforeAll(async () => {
    pool = await WorkerPool.create({ threads: 2 })
    const teacher = await loadModel(shared('models/stories260K'))
    const student = await wandaStudent(teacher)
    trainer = await LlamaTrainer.create(pool, student, teacher, 256, { temperature: 2, alpha: 0.5 })
    const ids = referenceIds('tinystories_calib')
    const windows = Array.from({ length: 8 }, (_, j) => referenceWindow(ids, j))
    sums = await trainer.accumulate(windows, 1 / (8 * 255))
    trainer.maskGrads()
  })
  afterAll(async () => {
    trainer?.free()
    await pool?.close()
  })

  it('loss, CE and KL match within 1e-5 relative', () => {
    const ref = JSON.parse(readFileSync(shared('reference/training/reference-training.json'), 'utf8')) as {
      runs: { kd_wanda50: { first_loss: StepLoss; T: number; alpha: number } }
    }
    const { first_loss: want, T, alpha } = ref.runs.kd_wanda50
    expect(sums.predictions).toBe(8 * 255)
    const ce = sums.ce / sums.predictions,
      kl = sums.kl / sums.predictions
    const loss = alpha * T * T * kl + (1 - alpha) * ce
    expect(Math.abs(ce / want.ce - 1), `CE ${ce} vs ${want.ce}`).toBeLessThan(1e-5)
    expect(Math.abs(kl / want.kl - 1), `KL ${kl} vs ${want.kl}`).toBeLessThan(1e-5)
    expect(Math.abs(loss / want.loss - 1), `loss ${loss} vs ${want.loss}`).toBeLessThan(1e-5)
  })

  it('every block Linear gradient matches within 1e-4 relative Frobenius norm', async () => {
    const ref = await openModelFiles(shared('reference/training/grads_kd_wanda50_step0.safetensors'))
    expect(ref.tensors).toHaveLength(35)
    const mine = new Map(trainer.params.map((p) => [p.name, p.grad.view().slice()]))
    let worst = 0
    for (const t of ref.tensors) {
      const g = mine.get(t.name)
      expect(g, t.name).toBeDefined()
      const want = await readTensorF32(t)
      let num = 0,
        den = 0
      for (let i = 0; i < want.length; i++) {
        num += (g![i] - want[i]) ** 2
        den += want[i] ** 2
      }
      const rel = Math.sqrt(num / den)
      worst = Math.max(worst, rel)
      expect(rel, t.name).toBeLessThan(1e-4)
    }
    console.log(`step 0: worst relative gradient error ${worst.toExponential(2)}`)
  })

  it('kernel memory matches the stated formula (weights + gradients + checkpoints + one block)', () => {
    const formula = trainer.formulaBytes(8)
    console.log(
      `step 0: kernel memory ${(trainer.peakBytes / 2 ** 20).toFixed(2)} MiB measured, ${(formula / 2 ** 20).toFixed(2)} MiB by the formula`,
    )
    // Regions are rounded up to 64 bytes and the rope table is counted once: a few percent at most.
    expect(trainer.peakBytes / formula).toBeGreaterThan(0.97)
    expect(trainer.peakBytes / formula).toBeLessThan(1.05)
  })

  it('pruned entries get a zero gradient', () => {
    let masked = 0
    for (const p of trainer.params) {
      if (!p.mask) continue
      const g = p.grad.view()
      for (let i = 0; i < g.length; i++) {
        if (p.mask[i] !== 0) continue
        masked++
        if (g[i] !== 0) throw new Error(`${p.name}[${i}] is pruned but has gradient ${g[i]}`)
      }
    }
    expect(masked).toBeGreaterThan(0)
  })
})

if (!hasShared) console.warn(`llama-trainer-step0.test: ${SKIP_SHARED}`)
