// Hooks that hold a Linear's input (HeldInput, forward/causal-lm.ts): the Llama block must not write the
// buffer again until the hold ends, and holding must change nothing the block computes. Every hold here
// ends late (a timer), so a block that rewrote the buffer first would be caught in the act.

import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadModel, type LoadedModel } from '../model/loaded-model'
import { repoRoot } from '../testing/shared-data'
import { WorkerPool } from '../pool/worker-pool'
import type { LinearRole } from './causal-lm'
import { createForward } from './index'

describe('held Linear inputs in the Llama block', () => {
  let pool: WorkerPool
  let model: LoadedModel
  beforeAll(async () => {
    pool = await WorkerPool.create({ threads: 2 })
    model = await loadModel(path.join(repoRoot, 'resources/demo/stories260K'))
  })
  afterAll(async () => {
    await pool.close()
  })

  it('keeps each held input unchanged until its hold ends, and computes the same block output', async () => {
    const forward = await createForward(pool, model)
    try {
      const T = 32
      const windows = [0, 1, 2, 3].map((w) => Int32Array.from({ length: T }, (_, i) => (7 * w + 13 * i + 1) % 512))
      const hidden = await forward.embed(windows)
      const plain = hidden.slice()
      await forward.block(1, plain, T)

      const held = hidden.slice()
      const seen: LinearRole[] = []
      const changedWhileHeld: LinearRole[] = []
      await forward.block(1, held, T, {
        linearInput(_layer, role, x, M, K, hold) {
          expect(hold).toBeDefined()
          seen.push(role)
          const copy = x.slice(0, M * K)
          hold!.keepUntil(
            new Promise<void>((resolve) =>
              setTimeout(() => {
                const now = new Float32Array(pool.memory.buffer, hold!.ptr, M * K)
                if (now.some((v, i) => !Object.is(v, copy[i]))) changedWhileHeld.push(role)
                resolve()
              }, 15),
            ),
          )
        },
      })
      expect(seen).toEqual(['q', 'k', 'v', 'o', 'gate', 'up', 'down'])
      expect(changedWhileHeld).toEqual([])
      expect(held).toEqual(plain)
    } finally {
      forward.close()
    }
  })

  it('passes on a failed hold as the block’s failure, after every hold has ended', async () => {
    const forward = await createForward(pool, model)
    try {
      const T = 16
      const hidden = await forward.embed([3, 5].map((s) => Int32Array.from({ length: T }, (_, i) => i + s)))
      let pending = 0
      const failure = new Error('the hook failed')
      const run = forward.block(0, hidden, T, {
        linearInput(_layer, role, _x, _M, _K, hold) {
          pending++
          hold!.keepUntil(
            new Promise<void>((resolve, reject) =>
              setTimeout(() => {
                pending--
                if (role === 'o') reject(failure)
                else resolve()
              }, 10),
            ),
          )
        },
      })
      await expect(run).rejects.toBe(failure)
      expect(pending).toBe(0)
    } finally {
      forward.close()
    }
  })
})
