// Dense symmetric positive-definite algebra for GPTQ and SparseGPT, in f64:
// the upper Cholesky factor of H⁻¹ ("Hinv" in the reference), via L = chol(H), H⁻¹ = L⁻ᵀL⁻¹, U = chol(H⁻¹)ᵀ.

import { WhittleError } from '../../errors'

/** In place: A (n×n, row-major, symmetric) → its lower Cholesky factor L (upper part zeroed). */
export function choleskyLower(A: Float64Array, n: number): void {
  for (let j = 0; j < n; j++) {
    let d = A[j * n + j]
    for (let k = 0; k < j; k++) d -= A[j * n + k] * A[j * n + k]
    if (!(d > 0)) throw new WhittleError('validation', null, `matrix is not positive definite at column ${j} (pivot ${d}); raise the damping`)
    const ljj = Math.sqrt(d)
    A[j * n + j] = ljj
    for (let i = j + 1; i < n; i++) {
      let s = A[i * n + j]
      const ri = i * n, rj = j * n
      for (let k = 0; k < j; k++) s -= A[ri + k] * A[rj + k]
      A[ri + j] = s / ljj
    }
    for (let k = j + 1; k < n; k++) A[j * n + k] = 0
  }
}

/** In place: lower-triangular L → L⁻¹ (lower-triangular). */
export function invertLower(L: Float64Array, n: number): void {
  for (let j = 0; j < n; j++) {
    L[j * n + j] = 1 / L[j * n + j]
    for (let i = j + 1; i < n; i++) {
      let s = 0
      for (let k = j; k < i; k++) s -= L[i * n + k] * L[k * n + j]
      L[i * n + j] = s / L[i * n + i]
    }
  }
}

/** H (SPD) → upper Cholesky factor U of H⁻¹, so that H⁻¹ = UᵀU. H is not modified. */
export function inverseCholeskyUpper(H: Float64Array, n: number): Float64Array {
  const L = H.slice()
  choleskyLower(L, n)
  invertLower(L, n) // L⁻¹
  // H⁻¹ = L⁻ᵀ L⁻¹ : (H⁻¹)[i][j] = Σ_k Linv[k][i] Linv[k][j], k ≥ max(i, j)
  const Hinv = new Float64Array(n * n)
  for (let i = 0; i < n; i++) {
    for (let j = i; j < n; j++) {
      let s = 0
      for (let k = j; k < n; k++) s += L[k * n + i] * L[k * n + j]
      Hinv[i * n + j] = s
      Hinv[j * n + i] = s
    }
  }
  choleskyLower(Hinv, n)
  // Upper factor U = Lᵀ of chol(H⁻¹).
  const U = new Float64Array(n * n)
  for (let i = 0; i < n; i++) for (let j = 0; j <= i; j++) U[j * n + i] = Hinv[i * n + j]
  return U
}
