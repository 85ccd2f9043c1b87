// The inverse-Hessian factor GPTQ and SparseGPT need, on the TS reference path (no worker pool):
// U = upper Cholesky factor of H⁻¹ ("Hinv" in the reference: H⁻¹ = UᵀU). The reference computes it as
// chol(H) → its inverse → H⁻¹ = L⁻ᵀL⁻¹ → chol(H⁻¹). Here it takes half the work: with J the permutation
// that reverses the order, let L be the lower Cholesky factor of JHJ. Then H = (JLJ)(JLJ)ᵀ with JLJ upper
// triangular, so H⁻¹ = RᵀR for R = (JLJ)⁻¹ = J·L⁻¹·J, upper triangular with a positive diagonal: R is U.
// One factorization and one triangular inverse (n³/3 multiply-adds) instead of two of each kind (2n³/3).
// The arithmetic is the kernels' own twin (kernels/reference/linalg.ts), so this path and
// inverseCholeskyUpperWasm (./kernels.ts) give the same bits.

import { choleskyLower, invertLower } from '../../../../kernels/reference/linalg'
import { fromKernelError, WhittleError } from '../../errors'

/** Factors JHJ in place; a failed pivot k of JHJ is column n − 1 − k of H, as the error names it. */
function factorReversed(A: Float64Array, n: number): void {
  const failed = choleskyLower(A, n)
  if (failed !== 0)
    throw new WhittleError(
      'validation',
      null,
      `matrix is not positive definite at column ${n - failed}; raise the damping`,
    )
}

/** H (SPD, n×n row-major) → upper Cholesky factor U of H⁻¹, so that H⁻¹ = UᵀU. H is not modified. */
export function inverseCholeskyUpper(H: Float64Array, n: number): Float64Array {
  try {
    return inverseCholeskyUpperTwin(H, n)
  } catch (e) {
    throw fromKernelError(e)
  }
}

function inverseCholeskyUpperTwin(H: Float64Array, n: number): Float64Array {
  // JHJ: reversing a row-major matrix's array reverses its rows and its columns.
  const M = H.slice(0, n * n).reverse()
  factorReversed(M, n)
  invertLower(M, n) // L⁻¹
  return reversedUpper(M, n, new Float64Array(n * n))
}

/**
 * U = J·L⁻¹·J into `U` (zero below the diagonal) from L⁻¹ in the lower triangle of M (its upper triangle is
 * not read): U[i][j] = M[n−1−i][n−1−j] for j ≥ i. Row i of U reads row n−1−i of M backwards, so both are
 * walked in order. An f32 destination rounds each value once.
 */
export function reversedUpper<T extends Float64Array | Float32Array>(M: Float64Array, n: number, U: T): T {
  for (let i = 0; i < n; i++) {
    const row = i * n,
      src = (n - 1 - i) * n + (n - 1)
    U.fill(0, row, row + i)
    for (let j = i; j < n; j++) U[row + j] = M[src - j]
  }
  return U
}
