// The inverse-Hessian factor GPTQ and SparseGPT need, on the TS reference path (no worker pool):
// U = upper Cholesky factor of H⁻¹ ("Hinv" in the reference), via L = chol(H), H⁻¹ = L⁻ᵀL⁻¹, U = chol(H⁻¹)ᵀ.
// The arithmetic is the kernels' own twin (kernels/reference/linalg.ts), so this path and
// inverseCholeskyUpperWasm (./kernels.ts) give the same bits.

import { choleskyLower, invertLower, lowerGram } from '../../../../kernels/reference/linalg'
import { fromKernelError, WhittleError } from '../../errors'

function factor(A: Float64Array, n: number, what: string): void {
  const failed = choleskyLower(A, n)
  if (failed !== 0)
    throw new WhittleError(
      'validation',
      null,
      `${what} is not positive definite at column ${failed - 1}; raise the damping`,
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
  const M = H.slice()
  factor(M, n, 'matrix')
  invertLower(M, n) // L⁻¹
  lowerGram(M, M, n) // H⁻¹ = L⁻ᵀL⁻¹
  factor(M, n, 'the inverse')
  const U = new Float64Array(n * n)
  for (let i = 0; i < n; i++) for (let j = 0; j <= i; j++) U[j * n + i] = M[i * n + j]
  return U
}
