// The codebook update against the exact least-squares centroids, solved here densely from the normal
// equations of tr((W − Q) H (W − Q)ᵀ), on the TS path and on the WASM matmul.

import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { roundToF16 } from '../../numerics/float-encodings'
import { WorkerPool } from '../../pool/worker-pool'
import { correlatedInputs, gram, lcg } from '../testing/synthetic-layer'
import { storeCodebook } from './vq-codebook'
import { VqLayout } from './vq-layout'
import { updateCodebooks } from './vq-refine'

/** Solves A x = b (n × n, dense) by Gaussian elimination with partial pivoting. */
function solve(A: Float64Array, b: Float64Array, n: number): Float64Array {
  const M = A.slice(),
    x = b.slice()
  for (let c = 0; c < n; c++) {
    let p = c
    for (let r = c + 1; r < n; r++) if (Math.abs(M[r * n + c]) > Math.abs(M[p * n + c])) p = r
    for (let j = 0; j < n; j++) [M[c * n + j], M[p * n + j]] = [M[p * n + j], M[c * n + j]]
    ;[x[c], x[p]] = [x[p], x[c]]
    for (let r = c + 1; r < n; r++) {
      const f = M[r * n + c] / M[c * n + c]
      for (let j = c; j < n; j++) M[r * n + j] -= f * M[c * n + j]
      x[r] -= f * x[c]
    }
  }
  for (let c = n - 1; c >= 0; c--) {
    for (let j = c + 1; j < n; j++) x[c] -= M[c * n + j] * x[j]
    x[c] /= M[c * n + c]
  }
  return x
}

/** M · H for M [rows, cols], in f64. */
function timesH(M: ArrayLike<number>, H: Float64Array, rows: number, cols: number): Float64Array {
  const out = new Float64Array(rows * cols)
  for (let r = 0; r < rows; r++)
    for (let c = 0; c < cols; c++) for (let j = 0; j < cols; j++) out[r * cols + j] += M[r * cols + c] * H[c * cols + j]
  return out
}

describe('updateCodebooks', () => {
  const rows = 12,
    cols = 16,
    T = 200
  const layout = new VqLayout(rows, cols, { dim: 2, bits: 1, groupSize: 96, columnsPerGroup: 8, codebookDtype: 'f16' })
  const X = correlatedInputs(T, cols, 2)
  const H = gram(X, T, cols)
  const rnd = lcg(9)
  const W = Float32Array.from({ length: rows * cols }, rnd)
  // Every entry used, so the normal equations are regular.
  const assignments = Int32Array.from({ length: rows * layout.vectorsPerRow }, (_, i) => i % layout.k)
  const start = (): Float32Array[] =>
    Array.from({ length: layout.codebooks }, () => {
      const cb = Float32Array.from({ length: layout.k * 2 }, () => 0.3 * rnd())
      storeCodebook(cb, 'f16')
      return cb
    })

  // The exact minimizer: column i of the normal matrix is gather(decode(e_i) · H); the right side gather(W · H).
  const n = layout.codebooks * layout.k * layout.d
  const A = new Float64Array(n * n)
  for (let i = 0; i < n; i++) {
    const e = new Float64Array(n)
    e[i] = 1
    const col = layout.gather(
      timesH(layout.decode(e, assignments, new Float32Array(rows * cols)), H, rows, cols),
      assignments,
    )
    for (let j = 0; j < n; j++) A[j * n + i] = col[j]
  }
  const exact = solve(A, layout.gather(timesH(W, H, rows, cols), assignments), n)

  let pool: WorkerPool
  beforeAll(async () => {
    pool = await WorkerPool.create({ threads: 2 })
  })
  afterAll(() => pool?.close())

  for (const withPool of [false, true]) {
    it(`reaches the least-squares centroids (${withPool ? 'WASM matmul' : 'TS'}), stored in f16`, async () => {
      const codebooks = start()
      const scales = codebooks.map(() => 1)
      const u = await updateCodebooks(layout, W, H, codebooks, scales, assignments, 'f16', withPool ? pool : undefined)
      expect(u.kept).toBe(true)
      expect(u.lossAfter).toBeLessThan(u.lossBefore)
      const flat = codebooks.flatMap((cb) => Array.from(cb))
      for (let i = 0; i < n; i++) {
        expect(flat[i]).toBe(roundToF16(flat[i]))
        expect(Math.abs(flat[i] - exact[i])).toBeLessThan(2e-3 * (1 + Math.abs(exact[i])))
      }
    })
  }

  it('keeps codebooks that are already optimal (no update is better once stored)', async () => {
    const codebooks = Array.from({ length: layout.codebooks }, (_, c) => {
      const cb = Float32Array.from(exact.subarray(c * layout.k * 2, (c + 1) * layout.k * 2))
      storeCodebook(cb, 'f16')
      return cb
    })
    const before = codebooks.map((cb) => cb.slice())
    const u = await updateCodebooks(layout, W, H, codebooks, [1, 1, 1, 1], assignments, 'f16')
    expect(u.lossAfter).toBeLessThanOrEqual(u.lossBefore)
    if (!u.kept) expect(codebooks).toEqual(before)
  })
})
