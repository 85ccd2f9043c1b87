// Low-rank factorization (truncated SVD): W [out, in] ≈ A · B with A [out, r] and B [r, in], the rank r
// chosen per tensor as the smallest that keeps a fraction `energy` of Σσ², or fixed. The singular
// subspace comes from the eigen-decomposition of the smaller Gram matrix (WWᵀ or WᵀW), and the view holds
// the dense reconstruction, which is what exports write (HF configs have no standard key for factored
// Linears); the stored-parameter count r·(out + in) is what a factored checkpoint would hold.

import { WhittleError } from '../../errors'
import { symmetricEigen } from '../linalg/symmetric-eigen'
import { intParam, numberParam, type ParamSpec } from '../../../contract/method-params'
import type { CompressionMethod } from './method'
import { ParamReader } from './params'

export interface LowRankParams {
  energy: number | null
  rank: number | null
}

export interface LowRankFactors {
  rank: number
  /** [out, rank] row-major */
  a: Float32Array
  /** [rank, in] row-major */
  b: Float32Array
  /** Fraction of Σσ² kept. */
  energy: number
}

/** The rank-r factors of W [rows, cols] by the chosen rule. */
export function lowRankFactors(W: Float32Array, rows: number, cols: number, p: LowRankParams): LowRankFactors {
  const left = rows <= cols
  const n = left ? rows : cols
  // Gram of the smaller side: G = WWᵀ (left singular vectors) or WᵀW (right).
  const G = new Float64Array(n * n)
  if (left) {
    for (let i = 0; i < rows; i++)
      for (let j = i; j < rows; j++) {
        let s = 0
        for (let k = 0; k < cols; k++) s += W[i * cols + k] * W[j * cols + k]
        G[i * n + j] = G[j * n + i] = s
      }
  } else {
    for (let i = 0; i < cols; i++)
      for (let j = i; j < cols; j++) {
        let s = 0
        for (let k = 0; k < rows; k++) s += W[k * cols + i] * W[k * cols + j]
        G[i * n + j] = G[j * n + i] = s
      }
  }
  const { values, vectors } = symmetricEigen(G, n)
  const total = values.reduce((a, x) => a + Math.max(0, x), 0)
  let r = p.rank ?? n
  if (p.energy !== null) {
    let kept = 0
    r = 0
    while (r < n && (total === 0 || kept < p.energy * total)) kept += Math.max(0, values[r++])
    r = Math.max(1, r)
  }
  r = Math.min(r, n)
  const kept = values.subarray(0, r).reduce((a, x) => a + Math.max(0, x), 0)
  // Q [n, r]: the top-r singular vectors of the smaller side.
  const q = (i: number, j: number): number => vectors[i * n + j]
  const a = new Float32Array(rows * r),
    b = new Float32Array(r * cols)
  if (left) {
    // A = U_r, B = U_rᵀ W
    for (let i = 0; i < rows; i++) for (let j = 0; j < r; j++) a[i * r + j] = q(i, j)
    for (let j = 0; j < r; j++)
      for (let c = 0; c < cols; c++) {
        let s = 0
        for (let i = 0; i < rows; i++) s += q(i, j) * W[i * cols + c]
        b[j * cols + c] = s
      }
  } else {
    // A = W V_r, B = V_rᵀ
    for (let i = 0; i < rows; i++)
      for (let j = 0; j < r; j++) {
        let s = 0
        for (let c = 0; c < cols; c++) s += W[i * cols + c] * q(c, j)
        a[i * r + j] = s
      }
    for (let j = 0; j < r; j++) for (let c = 0; c < cols; c++) b[j * cols + c] = q(c, j)
  }
  return { rank: r, a, b, energy: total > 0 ? kept / total : 1 }
}

/** A · B into W [rows, cols]. */
export function reconstruct(f: LowRankFactors, rows: number, cols: number, W: Float32Array): void {
  for (let i = 0; i < rows; i++)
    for (let c = 0; c < cols; c++) {
      let s = 0
      for (let j = 0; j < f.rank; j++) s += f.a[i * f.rank + j] * f.b[j * cols + c]
      W[i * cols + c] = s
    }
}

export const LOW_RANK_PARAMS: readonly ParamSpec[] = [
  numberParam(
    'energy',
    0.9,
    0.01,
    1,
    'Keep the smallest rank holding this fraction of Σσ² (default unless rank is given)',
    0.01,
  ),
  intParam('rank', null, 1, 1 << 20, 'A fixed rank instead of an energy threshold'),
]

export const lowRank: CompressionMethod<LowRankParams> = {
  name: 'low_rank',
  kind: 'transform',
  summary: 'Truncated SVD per Linear, rank by energy threshold or fixed; no calibration',
  params: LOW_RANK_PARAMS,
  needs: { calibration: false, hessian: false },
  parseParams(raw, where) {
    const r = new ParamReader(raw, where, LOW_RANK_PARAMS)
    const rank = r.optInt('rank')
    const energy = r.num('energy')
    r.done()
    if (rank !== null && r.given('energy')) r.fail('rank', 'give either rank or energy, not both')
    return { energy: rank === null ? energy : null, rank }
  },
  predict: (p, rows, cols) => ({
    // The rank an energy threshold picks is known only from the weights: predict the factor size at the given rank, else dense.
    bitsPerWeight: p.rank ? (16 * Math.min(p.rank, rows, cols) * (rows + cols)) / (rows * cols) : 16,
    format: p.rank ? `rank ${p.rank}` : `energy ${p.energy}`,
  }),
  async compressGroup(ctx) {
    return ctx.linears.map((l) => {
      if (l.rows * l.cols === 0) throw new WhittleError('validation', null, `low_rank: ${l.name} is empty`)
      const f = lowRankFactors(l.weight, l.rows, l.cols, l.params)
      reconstruct(f, l.rows, l.cols, l.weight)
      const stored = f.rank * (l.rows + l.cols)
      return {
        name: l.name,
        bitsPerWeight: (16 * stored) / (l.rows * l.cols),
        storedParams: stored,
        format: `rank ${f.rank} (energy ${f.energy.toFixed(3)})`,
        ...(stored >= l.rows * l.cols ? { note: 'the factors are no smaller than the dense weight' } : {}),
      }
    })
  },
}
