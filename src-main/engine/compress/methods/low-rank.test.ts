// Low-rank factorization against matrices whose spectrum is known by construction.

import { describe, expect, it } from 'vitest'
import { symmetricEigen } from '../linalg/symmetric-eigen'
import { lcg } from '../testing/synthetic-layer'
import { lowRank, lowRankFactors, reconstruct } from './low-rank'

/** W = Σ_k s_k u_k v_kᵀ with orthonormal u, v (Gram–Schmidt on random vectors) plus optional noise. */
function knownRank(rows: number, cols: number, s: number[], noise: number, seed: number): Float32Array {
  const rnd = lcg(seed)
  const ortho = (n: number, k: number): number[][] => {
    const out: number[][] = []
    for (let j = 0; j < k; j++) {
      const v = Array.from({ length: n }, rnd)
      for (const u of out) {
        const d = v.reduce((a, x, i) => a + x * u[i], 0)
        for (let i = 0; i < n; i++) v[i] -= d * u[i]
      }
      const len = Math.hypot(...v)
      out.push(v.map((x) => x / len))
    }
    return out
  }
  const U = ortho(rows, s.length),
    V = ortho(cols, s.length)
  const W = new Float32Array(rows * cols)
  for (let i = 0; i < rows; i++)
    for (let c = 0; c < cols; c++) {
      let x = noise * rnd()
      s.forEach((sk, k) => (x += sk * U[k][i] * V[k][c]))
      W[i * cols + c] = x
    }
  return W
}

describe('symmetric eigen-decomposition (Jacobi)', () => {
  it('finds eigenvalues and orthonormal eigenvectors: A v = λ v', () => {
    const n = 12,
      rnd = lcg(9)
    const M = Float64Array.from({ length: n * n }, rnd)
    const A = new Float64Array(n * n)
    for (let i = 0; i < n; i++)
      for (let j = 0; j < n; j++) for (let k = 0; k < n; k++) A[i * n + j] += M[k * n + i] * M[k * n + j]
    const { values, vectors } = symmetricEigen(A, n)
    for (let j = 0; j < n; j++) {
      for (let i = 0; i < n; i++) {
        let av = 0
        for (let k = 0; k < n; k++) av += A[i * n + k] * vectors[k * n + j]
        expect(av).toBeCloseTo(values[j] * vectors[i * n + j], 9)
      }
      if (j > 0) expect(values[j]).toBeLessThanOrEqual(values[j - 1])
      let dot = 0
      for (let i = 0; i < n; i++) dot += vectors[i * n + j] * vectors[i * n + ((j + 1) % n)]
      expect(Math.abs(dot)).toBeLessThan(1e-10)
    }
  })
})

describe('low-rank factorization', () => {
  for (const [rows, cols] of [
    [20, 30],
    [30, 20],
  ]) {
    it(`recovers a rank-3 ${rows}×${cols} matrix: energy picks rank 3, the factors rebuild it`, () => {
      const W = knownRank(rows, cols, [5, 3, 2], 0, 4)
      const f = lowRankFactors(W, rows, cols, { energy: 0.999, rank: null })
      expect(f.rank).toBe(3)
      const R = new Float32Array(rows * cols)
      reconstruct(f, rows, cols, R)
      for (let i = 0; i < W.length; i++) expect(R[i]).toBeCloseTo(W[i], 5)
      // Energy 25/38 → rank 1 keeps 25 of 38.
      expect(lowRankFactors(W, rows, cols, { energy: 0.6, rank: null })).toMatchObject({ rank: 1 })
      expect(lowRankFactors(W, rows, cols, { energy: 0.6, rank: null }).energy).toBeCloseTo(25 / 38, 5)
    })
  }

  it('as a method: replaces the weight with its truncation and reports the factor size', async () => {
    const W = knownRank(16, 24, [4, 2, 1, 0.5], 0.001, 2)
    const l = {
      name: 'w',
      role: 'q' as const,
      layer: 0,
      rows: 16,
      cols: 24,
      weight: W.slice(),
      params: lowRank.parseParams({ rank: 2 }, 's'),
    }
    const [o] = await lowRank.compressGroup({ layer: 0, group: 'qkv', linears: [l], input: null, pool: null as never })
    expect(o.storedParams).toBe(2 * (16 + 24))
    expect(o.format).toMatch(/^rank 2/)
    let err = 0,
      tot = 0
    for (let i = 0; i < W.length; i++) {
      err += (W[i] - l.weight[i]) ** 2
      tot += W[i] ** 2
    }
    // The discarded singular values 1 and 0.5 (plus noise) out of 4, 2, 1, 0.5.
    expect(Math.sqrt(err / tot)).toBeCloseTo(Math.sqrt(1.25 / 21.25), 2)
    expect(() => lowRank.parseParams({ rank: 2, energy: 0.9 }, 'recipe step 1 (low_rank)')).toThrow(
      /step 1 \(low_rank\): params.rank give either rank or energy/,
    )
  })
})
