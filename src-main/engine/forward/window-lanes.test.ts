// How the forward pass spreads work over the workers must never change a value. With two or more workers
// and several windows per pass, each worker takes whole windows (RoPE and every head of one window in one
// task) and the output head's rows are split with their loss; with one worker, or inline, neither
// happens. The per-token losses of the bundled stories260K (8 heads over 4 KV heads) must be the same bits
// every way, for a window count that does not divide evenly among the workers (random token ids).

import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { createForward } from '.'
import { loadModel } from '../model/loaded-model'
import { WorkerPool } from '../pool/worker-pool'
import { repoRoot } from '../testing/shared-data'
import { rng } from '../../../kernels/testing/kernel-harness'

describe('the forward pass on 0 to 3 workers', () => {
  it('gives every window the same per-token losses, bit for bit', async () => {
    const model = await loadModel(path.join(repoRoot, 'resources/demo/stories260K'))
    const random = rng(5)
    const T = 64
    // Token ids drawn at random from the vocabulary: the losses only need to be the same, not small.
    const windows = Array.from({ length: 5 }, () =>
      Int32Array.from({ length: T }, () => Math.floor(random() * model.arch.vocabSize)),
    )
    const results: Float64Array[][] = []
    for (const threads of [0, 1, 2, 3]) {
      const pool = await WorkerPool.create({ threads })
      try {
        const forward = await createForward(pool, model)
        try {
          results.push(await forward.windowNll(windows))
        } finally {
          forward.close()
        }
      } finally {
        await pool.close()
      }
    }
    const bits = (r: Float64Array[]) => r.map((w) => Array.from(new BigUint64Array(w.buffer, w.byteOffset, w.length)))
    for (const r of results.slice(1)) expect(bits(r)).toEqual(bits(results[0]))
    expect(results[0]).toHaveLength(5)
    expect(results[0][0]).toHaveLength(T - 1)
    expect(results[0].every((w) => w.every((x) => Number.isFinite(x) && x > 0))).toBe(true)
  }, 60_000)
})
