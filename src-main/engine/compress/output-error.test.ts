// The output-error measure on a real worker pool against its f64 reference loop, and against values
// known without either: equal weights give 0, a zero or doubled compressed weight 1, a sign-flipped one 2
// (scaling by a power of two is exact in floating point).

import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { normalish, rng } from '../../../kernels/testing/kernel-harness'
import { WhittleError } from '../errors'
import { WorkerPool } from '../pool/worker-pool'
import { relativeOutputError, relativeOutputErrorReference, type OutputErrorInput } from './output-error'

function input(seed: number, S: number, rows: number, cols: number, noise: number, scaled: boolean): OutputErrorInput {
  const random = rng(seed)
  const original = normalish(random, rows * cols, 0.05)
  const compressed = original.map((w) => w + noise * (random() - 0.5))
  const inputScale = scaled ? normalish(random, cols, 0.2, 1) : undefined
  // A method that folded s divided the producer's output by s and multiplied Ŵ's columns by s.
  if (inputScale) for (let k = 0; k < compressed.length; k++) compressed[k] *= inputScale[k % cols]
  return { sample: normalish(random, S * cols), sampleRows: S, original, compressed, rows, cols, inputScale }
}

describe('relative output error', () => {
  let pool: WorkerPool
  beforeAll(async () => {
    pool = await WorkerPool.create({ threads: 2 })
  })
  afterAll(async () => {
    await pool.close()
  })

  it('matches the f64 reference loop, with and without an input scale, across blocks of rows', async () => {
    for (const [S, rows, cols, scaled] of [
      [256, 64, 64, false],
      [256, 172, 64, true],
      [33, 64, 172, false],
      // 2048 columns: 1024 rows a block, so 1100 rows take two blocks, the second one short.
      [6, 1100, 2048, true],
      [1, 3, 5, false],
    ] as const) {
      const i = input(S * rows + cols, S, rows, cols, 0.01, scaled)
      const want = relativeOutputErrorReference(i)
      const got = await relativeOutputError(pool, i)
      expect(want).toBeGreaterThan(0.01)
      expect(Math.abs(got - want) / want, `${S}×${rows}×${cols}`).toBeLessThan(1e-5)
    }
  })

  it('is 0 for equal weights, 1 for a zero or doubled compressed weight, 2 for a sign-flipped one', async () => {
    const i = input(7, 40, 96, 80, 0, false)
    expect(await relativeOutputError(pool, i)).toBe(0)
    expect(await relativeOutputError(pool, { ...i, compressed: new Float32Array(96 * 80) })).toBe(1)
    expect(await relativeOutputError(pool, { ...i, compressed: i.original.map((w) => 2 * w) })).toBe(1)
    expect(await relativeOutputError(pool, { ...i, compressed: i.original.map((w) => -w) })).toBe(2)
    expect(await relativeOutputError(pool, { ...i, sampleRows: 0 })).toBe(0)
  })

  it('names what is short, and gives kernel memory back', async () => {
    const i = input(3, 8, 16, 16, 0.01, false)
    const live = pool.arena.liveBytes
    await expect(relativeOutputError(pool, { ...i, compressed: new Float32Array(10) })).rejects.toThrow(WhittleError)
    await expect(relativeOutputError(pool, { ...i, sampleRows: 9 })).rejects.toThrow(/the sample holds/)
    await relativeOutputError(pool, i)
    expect(pool.arena.liveBytes).toBe(live)
  })
})
