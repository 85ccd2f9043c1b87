// inverseCholeskyUpperWasm (the linalg kernels on a real worker pool) against cholesky.ts, the TS path over
// the kernels' twin, and against UᵀU·H = I. Timings are printed, never asserted.

import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { identityError, multiply, relativeError, spd, transpose } from '../../../../kernels/testing/matrices'
import { WhittleError } from '../../errors'
import { WorkerPool } from '../../pool/worker-pool'
import { inverseCholeskyUpper } from './cholesky'
import { inverseCholeskyUpperWasm } from './kernels'

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
})
