// inverseCholeskyUpperWasm (the linalg kernels on a real worker pool) against cholesky.ts, the TS path over
// the kernels' twin, and against UᵀU·H = I. Timings are printed, never asserted.

import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { identityError, multiply, relativeError, spd, transpose } from '../../../../kernels/testing/matrices'
import { WhittleError } from '../../errors'
import { WorkerPool } from '../../pool/worker-pool'
import { inverseCholeskyUpper } from './cholesky'
import { inverseCholeskyUpperF32, inverseCholeskyUpperParallel, inverseCholeskyUpperWasm, splitRows } from './kernels'

describe('inverseCholeskyUpperWasm on a worker pool', () => {
  let pool: WorkerPool
  beforeAll(async () => {
    pool = await WorkerPool.create({ threads: 2 })
  })
  afterAll(async () => {
    await pool.close()
  })

  it.each([1, 3, 64, 129, 261])(
    'inverseCholeskyUpperWasm matches cholesky.ts inverseCholeskyUpper and UᵀU·H = I (n = %i)',
    (n) => {
      const H = spd(n, 300 + n)
      const before = pool.arena.liveBytes
      const U = inverseCholeskyUpperWasm(pool, H, n)
      expect(pool.arena.liveBytes).toBe(before)
      const want = inverseCholeskyUpper(H, n)
      expect(relativeError(U, want)).toBeLessThan(1e-9)
      for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) expect(U[i * n + j]).toBe(0)
      expect(identityError(multiply(multiply(transpose(U, n), U, n), H, n), n)).toBeLessThan(1e-9)
      expect(H).toEqual(spd(n, 300 + n)) // H itself is not modified
    },
  )

  it('inverseCholeskyUpperWasm: a WhittleError naming the column for a matrix that is not positive definite', () => {
    const n = 40
    const H = spd(n, 8)
    H[17 * n + 17] = -1
    const before = pool.arena.liveBytes
    expect(() => inverseCholeskyUpperWasm(pool, H, n)).toThrow(/not positive definite at column 17; raise the damping/)
    expect(() => inverseCholeskyUpperWasm(pool, H, n)).toThrow(WhittleError)
    expect(pool.arena.liveBytes).toBe(before) // released on failure too
    expect(() => inverseCholeskyUpperWasm(pool, H, 41)).toThrow(WhittleError)
    expect(() => inverseCholeskyUpperWasm(pool, H, 0)).toThrow(WhittleError)
    expect(() => inverseCholeskyUpperWasm(pool, H, 1e6)).toThrow(WhittleError)
  })

  it('prints timings (not asserted): inverse Cholesky n = 1024, 2048 against cholesky.ts', () => {
    const lines: string[] = []
    for (const n of [1024, 2048]) {
      const H = spd(Math.min(n, 256), 1) // a cheap SPD seed, then tiled into a diagonally dominant n×n
      const big = new Float64Array(n * n)
      for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) big[i * n + j] = H[(i % 256) * 256 + (j % 256)] * 0.01
      for (let i = 0; i < n; i++) big[i * n + i] += n
      let t = performance.now()
      const U = inverseCholeskyUpperWasm(pool, big, n)
      const wasmMs = performance.now() - t
      let line = `inverseCholeskyUpper n=${n}: wasm ${wasmMs.toFixed(0)} ms`
      if (n <= 1024 || process.env.WHITTLE_LINALG_BENCH) {
        t = performance.now()
        const want = inverseCholeskyUpper(big, n)
        line += `, cholesky.ts ${(performance.now() - t).toFixed(0)} ms, max rel diff ${relativeError(U, want).toExponential(1)}`
      } else {
        line += ' (cholesky.ts skipped; set WHITTLE_LINALG_BENCH=1)'
      }
      lines.push(line)
    }
    console.log(lines.join('\n'))
  }, 120_000)

  it("cholesky.ts: a WhittleError for sizes the twin cannot run on, translated from the kernels' own error", () => {
    expect(() => inverseCholeskyUpper(new Float64Array(4), 3)).toThrow(WhittleError)
    try {
      inverseCholeskyUpper(new Float64Array(4), 3)
    } catch (e) {
      expect((e as WhittleError).code).toBe('validation')
    }
  })

  // 600 and 517 are large enough to be split across both workers (261 is not); 517 leaves ragged edges.
  it.each([3, 261, 517, 600])(
    'inverseCholeskyUpperParallel gives the bits of inverseCholeskyUpperWasm and releases its memory (n = %i)',
    async (n) => {
      const H = spd(n, 900 + n)
      const before = pool.arena.liveBytes
      const U = await inverseCholeskyUpperParallel(pool, H, n)
      expect(pool.arena.liveBytes).toBe(before)
      const want = inverseCholeskyUpperWasm(pool, H, n)
      expect(Buffer.from(U.buffer).equals(Buffer.from(want.buffer))).toBe(true)
      // (UᵀU·H = I is checked against inverseCholeskyUpperWasm above; the products are slow in TS at 600.)
      if (n <= 261) expect(identityError(multiply(multiply(transpose(U, n), U, n), H, n), n)).toBeLessThan(1e-9)
      expect(H).toEqual(spd(n, 900 + n))
    },
  )

  it('inverseCholeskyUpperParallel: a WhittleError naming the column, memory released', async () => {
    const n = 600
    const H = spd(n, 8)
    H[450 * n + 450] = -1
    const before = pool.arena.liveBytes
    await expect(inverseCholeskyUpperParallel(pool, H, n)).rejects.toThrow(
      /not positive definite at column 450; raise the damping/,
    )
    expect(pool.arena.liveBytes).toBe(before)
  })

  // GPTQ's plan for real layers: H written straight into kernel memory, the factor back as f32 (issue #15).
  it.each([3, 261, 600])(
    'inverseCholeskyUpperF32 gives the bits of Float32Array.from(inverseCholeskyUpperParallel) and releases its memory (n = %i)',
    async (n) => {
      const H = spd(n, 700 + n)
      const before = pool.arena.liveBytes
      const U = await inverseCholeskyUpperF32(pool, n, (dst) => dst.set(H))
      expect(pool.arena.liveBytes).toBe(before)
      const want = Float32Array.from(await inverseCholeskyUpperParallel(pool, H, n))
      expect(U).toBeInstanceOf(Float32Array)
      expect(Buffer.from(U.buffer).equals(Buffer.from(want.buffer))).toBe(true)
    },
  )

  it('inverseCholeskyUpperF32: a WhittleError naming the column, memory released', async () => {
    const n = 600
    const H = spd(n, 8)
    H[450 * n + 450] = -1
    const before = pool.arena.liveBytes
    await expect(inverseCholeskyUpperF32(pool, n, (dst) => dst.set(H))).rejects.toThrow(
      /not positive definite at column 450; raise the damping/,
    )
    expect(pool.arena.liveBytes).toBe(before)
    await expect(inverseCholeskyUpperF32(pool, 0, () => undefined)).rejects.toThrow(WhittleError)
  })

  it('splitRows covers the rows once, in ranges of about equal cost, cut at multiples of 4', () => {
    const cost = (r: number): number => 1000 - r
    for (const [start, end, parts, firstMin] of [
      [64, 1000, 2, 64],
      [64, 1000, 5, 0],
      [0, 7, 3, 0],
      [960, 1000, 2, 40],
      [10, 11, 4, 0],
    ]) {
      const ranges = splitRows(start, end, parts, cost, firstMin)
      expect(ranges[0][0]).toBe(start)
      expect(ranges.at(-1)![1]).toBe(end)
      expect(ranges.length).toBeLessThanOrEqual(parts)
      expect(ranges[0][1] - ranges[0][0]).toBeGreaterThanOrEqual(Math.min(firstMin, end - start))
      for (let i = 0; i < ranges.length; i++) {
        expect(ranges[i][1]).toBeGreaterThan(ranges[i][0])
        if (i > 0) expect(ranges[i][0]).toBe(ranges[i - 1][1])
        if (i + 1 < ranges.length) expect((ranges[i][1] - start) % 4).toBe(0)
      }
    }
    // Equal cost: the triangle 1000 − r over [0, 1000) in two parts cuts near 1000·(1 − 1/√2) ≈ 293.
    const [[, cut]] = splitRows(0, 1000, 2, cost)
    expect(Math.abs(cut - 293)).toBeLessThanOrEqual(4)
  })
})

describe('inverseCholeskyUpperF32 without worker threads', () => {
  it('runs the steps on this thread with the same bits', async () => {
    const pool = await WorkerPool.create({ threads: 0 })
    try {
      const n = 129
      const H = spd(n, 41)
      const U = await inverseCholeskyUpperF32(pool, n, (dst) => dst.set(H))
      expect(pool.arena.liveBytes).toBe(0)
      const want = Float32Array.from(inverseCholeskyUpperWasm(pool, H, n))
      expect(Buffer.from(U.buffer).equals(Buffer.from(want.buffer))).toBe(true)
    } finally {
      await pool.close()
    }
  })
})
