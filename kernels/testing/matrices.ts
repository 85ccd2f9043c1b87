// Small dense-matrix helpers for the linear-algebra tests (the kernels' and the engine's): random SPD and
// triangular matrices, plain products, and error measures. Independent of the code under test.

import { normalish, rng } from './kernel-harness'

/** Symmetric positive definite: B·Bᵀ/n + I for a random B, so the condition number stays modest. */
export function spd(n: number, seed: number): Float64Array {
  const B = normalish(rng(seed), n * n)
  const A = new Float64Array(n * n)
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = 0
      for (let k = 0; k < n; k++) s += B[i * n + k] * B[j * n + k]
      A[i * n + j] = A[j * n + i] = s / n + (i === j ? 1 : 0)
    }
  }
  return A
}

/** Lower-triangular with a diagonal in [1, 2), so its inverse is well conditioned; upper part zero. */
export function lowerTriangular(n: number, seed: number): Float64Array {
  const r = rng(seed)
  const L = new Float64Array(n * n)
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < i; j++) L[i * n + j] = (r() - 0.5) / Math.sqrt(n)
    L[i * n + i] = 1 + r()
  }
  return L
}

/** C = A·B for n×n row-major matrices, plain triple loop. */
export function multiply(A: Float64Array, B: Float64Array, n: number): Float64Array {
  const C = new Float64Array(n * n)
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < n; k++) {
      const a = A[i * n + k]
      if (a === 0) continue
      for (let j = 0; j < n; j++) C[i * n + j] += a * B[k * n + j]
    }
  }
  return C
}

export function transpose(A: Float64Array, n: number): Float64Array {
  const T = new Float64Array(n * n)
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) T[j * n + i] = A[i * n + j]
  return T
}

export function maxAbs(A: Float64Array): number {
  let m = 0
  for (const v of A) m = Math.max(m, Math.abs(v))
  return m
}

/** max |A − B| / max |B|. */
export function relativeError(A: Float64Array, B: Float64Array): number {
  let m = 0
  for (let i = 0; i < A.length; i++) m = Math.max(m, Math.abs(A[i] - B[i]))
  return m / maxAbs(B)
}

export function identityError(A: Float64Array, n: number): number {
  let m = 0
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) m = Math.max(m, Math.abs(A[i * n + j] - (i === j ? 1 : 0)))
  return m
}
