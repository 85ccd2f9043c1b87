// How the forward pass spreads work over the workers must never change a value. Where windows share out
// evenly enough, each worker takes whole windows through the whole block (llama-window-lanes.ts), a cache
// chunk of them at a time; otherwise the block runs op by op, products split by columns and each worker
// attending over whole windows; inline (no workers), op by op with nothing split. The output head's rows
// are split with their loss. The per-token losses of the bundled stories260K (8 heads over 4 KV heads)
// must be the same bits every way. At seqlen 256 a cache chunk is 2 windows: 8 windows go by windows on 1
// worker (four chunks), 2 (4 and 4, two chunks each) and 3 (3, 3 and 2: a chunk of one); 5 windows by
// windows on 1 worker and op by op on 2 and 3 (3 and 2, 2, 2 and 1 would leave workers waiting). Random
// token ids. windowNll's batch kept in kernel memory from embedding to head must give the bits of block()
// run layer by layer through JS memory.

import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { createForward } from '.'
import { loadModel } from '../model/loaded-model'
import { WorkerPool } from '../pool/worker-pool'
import { repoRoot } from '../testing/shared-data'
import { windowsPerCacheChunk } from './llama-window-lanes'
import { rng } from '../../../kernels/testing/kernel-harness'

describe('the forward pass on 0 to 3 workers', () => {
  it.each([8, 5])(
    'gives each of %i windows the same per-token losses, bit for bit',
    async (count) => {
      const model = await loadModel(path.join(repoRoot, 'resources/demo/stories260K'))
      const random = rng(5)
      const T = 256
      // Token ids drawn at random from the vocabulary: the losses only need to be the same, not small.
      const windows = Array.from({ length: count }, () =>
        Int32Array.from({ length: T }, () => Math.floor(random() * model.arch.vocabSize)),
      )
      const results: Float64Array[][] = []
      for (const threads of [0, 1, 2, 3]) {
        const pool = await WorkerPool.create({ threads })
        try {
          const forward = await createForward(pool, model)
          try {
            // The premise of the chunk counts above.
            expect(windowsPerCacheChunk(forward.bytesPerToken() * T)).toBe(2)
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
      expect(results[0]).toHaveLength(count)
      expect(results[0][0]).toHaveLength(T - 1)
      expect(results[0].every((w) => w.every((x) => Number.isFinite(x) && x > 0))).toBe(true)
    },
    60_000,
  )

  it('keeps a batch in kernel memory with the bits of block() through JS memory, layer by layer', async () => {
    const model = await loadModel(path.join(repoRoot, 'resources/demo/stories260K'))
    const random = rng(9)
    const windows = Array.from({ length: 4 }, () =>
      Int32Array.from({ length: 256 }, () => Math.floor(random() * model.arch.vocabSize)),
    )
    const pool = await WorkerPool.create({ threads: 2 })
    try {
      const forward = await createForward(pool, model)
      try {
        const kept = await forward.windowNll(windows)
        const hidden = await forward.embed(windows)
        for (let layer = 0; layer < model.arch.layers; layer++) await forward.block(layer, hidden, 256)
        const viaJs = await forward.nll(hidden, windows)
        const bits = (r: Float64Array[]) =>
          r.map((w) => Array.from(new BigUint64Array(w.buffer, w.byteOffset, w.length)))
        expect(bits(kept)).toEqual(bits(viaJs))
      } finally {
        forward.close()
      }
    } finally {
      await pool.close()
    }
  }, 60_000)
})
