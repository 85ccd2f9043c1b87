// The same model in both RoPE layouts gives the same training signal: stories260K as HF safetensors
// (rotate_half) and as llama.cpp's GGUF (interleaved pairs, q/k rows permuted) must agree on the loss and
// on every Linear gradient, q and k after undoing llama.cpp's row permutation. This runs the interleaved
// RoPE backward end to end. Cross-entropy only (α = 0), dense model, 4 windows of 128 tokens.

import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadModel } from '../model/loaded-model'
import { WorkerPool } from '../pool/worker-pool'
import { hasShared, referenceIds, shared } from '../testing/shared-data'
import { LlamaTrainer } from './llama-trainer'
import type { LossSums } from './head-loss'
import { referenceWindow } from './testing/reference-protocol'

interface Run {
  sums: LossSums
  grads: Map<string, Float32Array>
}

async function run(pool: WorkerPool, file: string): Promise<Run> {
  const model = await loadModel(shared(file))
  const trainer = await LlamaTrainer.create(pool, model, null, 128, { temperature: 1, alpha: 0 })
  try {
    const ids = referenceIds('tinystories_calib')
    const windows = Array.from({ length: 4 }, (_, j) => referenceWindow(ids, j, 128))
    const sums = await trainer.accumulate(windows, 1 / (4 * 127))
    return { sums, grads: new Map(trainer.params.map((p) => [`${p.layer}.${p.role}`, p.grad.view().slice()])) }
  } finally {
    trainer.free()
  }
}

/** HF row of llama.cpp's permuted q/k row r (per head: GGUF row 2i + j is HF row j·headDim/2 + i). */
function hfRow(r: number, headDim: number): number {
  const head = Math.floor(r / headDim),
    within = r % headDim
  return head * headDim + (within % 2) * (headDim / 2) + Math.floor(within / 2)
}

describe.skipIf(!hasShared)('training agrees across the HF and GGUF RoPE layouts (reference data present)', () => {
  let pool: WorkerPool
  let hf: Run, gguf: Run

  beforeAll(async () => {
    pool = await WorkerPool.create({ threads: 2 })
    hf = await run(pool, 'models/stories260K')
    gguf = await run(pool, 'models/stories260K-gguf/stories260K.gguf')
  })
  afterAll(() => pool?.close())

  it('the same cross-entropy', () => {
    expect(gguf.sums.predictions).toBe(hf.sums.predictions)
    expect(Math.abs(gguf.sums.ce / hf.sums.ce - 1)).toBeLessThan(1e-5)
  })

  it('the same gradient for every Linear (q and k rows un-permuted), within 1e-4 relative', () => {
    expect(gguf.grads.size).toBe(35)
    const headDim = 8 // stories260K: 64 / 8 heads
    for (const [key, want] of hf.grads) {
      const got = gguf.grads.get(key)!
      const role = key.split('.')[1]
      const cols = 64
      let num = 0,
        den = 0
      for (let r = 0; r < want.length / cols; r++) {
        const hr = role === 'q' || role === 'k' ? hfRow(r, headDim) : r
        for (let c = 0; c < cols; c++) {
          num += (got[r * cols + c] - want[hr * cols + c]) ** 2
          den += want[hr * cols + c] ** 2
        }
      }
      expect(Math.sqrt(num / den), key).toBeLessThan(1e-4)
    }
  })
})
