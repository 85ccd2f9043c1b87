// The SliceGPT algebra against plain definitions: a random orthogonal basis (QR of a random matrix by
// Gram–Schmidt, built here), products written out as sums, and the identities the method relies on.

import { describe, expect, it } from 'vitest'
import {
  basisChange,
  foldColumns,
  identityBasis,
  liftInputs,
  liftOutputs,
  rotateInputs,
  rotateOutputs,
  slicedWidth,
  type Basis,
} from './slicegpt-rotate'

function random(seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    return s / 2 ** 32 - 0.5
  }
}

/** An orthogonal D×D matrix (columns orthonormal) by Gram–Schmidt on random columns. */
function orthogonal(D: number, seed: number): Float64Array {
  const rnd = random(seed)
  const q = new Float64Array(D * D)
  for (let j = 0; j < D; j++) {
    const col = Array.from({ length: D }, () => rnd())
    for (let p = 0; p < j; p++) {
      let dot = 0
      for (let i = 0; i < D; i++) dot += col[i] * q[i * D + p]
      for (let i = 0; i < D; i++) col[i] -= dot * q[i * D + p]
    }
    const n = Math.hypot(...col)
    for (let i = 0; i < D; i++) q[i * D + j] = col[i] / n
  }
  return q
}

function randomMatrix(rows: number, cols: number, seed: number): Float32Array {
  const rnd = random(seed)
  return Float32Array.from({ length: rows * cols }, () => rnd())
}

const D = 12

describe('slicegpt rotation algebra', () => {
  const full: Basis = { q: orthogonal(D, 1), D, kept: D }
  const part: Basis = { q: full.q, D, kept: 7 }
  const other: Basis = { q: orthogonal(D, 2), D, kept: 5 }

  it('rotating a reader and a writer by the same full basis leaves their product unchanged', () => {
    // y = x · Wᵀ for a reader W [4, D]; the residual written by U [D, 3]: W · U is basis-free.
    const W = randomMatrix(4, D, 3),
      U = randomMatrix(D, 3, 4)
    const Wr = rotateInputs(W, 4, full),
      Ur = rotateOutputs(U, 3, full)
    for (let r = 0; r < 4; r++)
      for (let c = 0; c < 3; c++) {
        let a = 0,
          b = 0
        for (let i = 0; i < D; i++) {
          a += W[r * D + i] * U[i * 3 + c]
          b += Wr[r * D + i] * Ur[i * 3 + c]
        }
        expect(b).toBeCloseTo(a, 5)
      }
  })

  it('sliced rotation keeps the leading columns of W · Q, and lifting it back is W projected onto them', () => {
    const W = randomMatrix(3, D, 5)
    const Wr = rotateInputs(W, 3, part)
    expect(Wr.length).toBe(3 * 7)
    for (let r = 0; r < 3; r++)
      for (let j = 0; j < 7; j++) {
        let s = 0
        for (let i = 0; i < D; i++) s += W[r * D + i] * full.q[i * D + j]
        expect(Wr[r * 7 + j]).toBeCloseTo(s, 5)
      }
    // Lifting twice changes nothing more (a projection), and a full basis lifts back to W itself.
    const lifted = liftInputs(Wr, 3, part)
    const again = liftInputs(rotateInputs(lifted, 3, part), 3, part)
    for (let i = 0; i < lifted.length; i++) expect(again[i]).toBeCloseTo(lifted[i], 5)
    const back = liftInputs(rotateInputs(W, 3, full), 3, full)
    for (let i = 0; i < W.length; i++) expect(back[i]).toBeCloseTo(W[i], 5)
    const U = randomMatrix(D, 2, 6)
    const ub = liftOutputs(rotateOutputs(U, 2, full), 2, full)
    for (let i = 0; i < U.length; i++) expect(ub[i]).toBeCloseTo(U[i], 5)
  })

  it('the shortcut between two bases is Q_Aᵀ·Q_B: the identity within one basis, orthonormal columns otherwise', () => {
    const same = basisChange(part, part)
    for (let i = 0; i < 7; i++) for (let j = 0; j < 7; j++) expect(same[i * 7 + j]).toBeCloseTo(i === j ? 1 : 0, 6)
    // A full A into a sliced B: S = Q_Aᵀ Q_B' has orthonormal columns (SᵀS = I).
    const S = basisChange(full, other)
    for (let a = 0; a < 5; a++)
      for (let b = 0; b < 5; b++) {
        let s = 0
        for (let i = 0; i < D; i++) s += S[i * 5 + a] * S[i * 5 + b]
        expect(s).toBeCloseTo(a === b ? 1 : 0, 6)
      }
    // Into the identity basis it is Q_A'ᵀ itself.
    const lift = basisChange(part, identityBasis(D))
    for (let i = 0; i < 7; i++) for (let k = 0; k < D; k++) expect(lift[i * D + k]).toBeCloseTo(full.q[k * D + i], 6)
  })

  it('folds a norm scale into the columns', () => {
    const W = Float32Array.from([1, 2, 3, 4, 5, 6])
    expect([...foldColumns(W, 2, 3, Float32Array.from([2, 0.5, -1]))]).toEqual([2, 1, -3, 8, 2.5, -6])
  })

  it("keeps SliceGPT's width: (1 − fraction)·D rounded down to a multiple", () => {
    expect(slicedWidth(64, 0, 8)).toBe(64)
    expect(slicedWidth(64, 0.25, 8)).toBe(48)
    expect(slicedWidth(64, 0.1, 8)).toBe(56) // 57.6 → 57 → 56
    expect(slicedWidth(4096, 0.3, 8)).toBe(2864) // 2867.2 → 2867 → 2864
    expect(slicedWidth(64, 0.1, 1)).toBe(57)
  })
})
