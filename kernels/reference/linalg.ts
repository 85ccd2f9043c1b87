// Plain-TS twin of kernels/assembly/linalg.ts, bit-exact. Each output element follows one fixed
// sequence of operations, in this order (the kernel's SIMD lanes and cache blocks run over
// independent elements, so they never change it):
//   cholesky s = A[j][i] (upper triangle, j ≤ i); for k = 0 … j−1: s = s − L[j][k]·L[i][k];
//            L[j][j] = √s (fails unless s > 0), or L[i][j] = s / L[j][j]
//   invert   X[i][j] (j < i): s = 0; for k = j … i−1: s = s − L[i][k]·X[k][j]; X[i][j] = s / L[i][i];
//            X[i][i] = 1 / L[i][i]
// f64 needs no rounding helper: JS numbers are f64. (The calibration Hessian's twin is ./hessian.ts.)

import { kernelArgError, requireLength, requireSizes } from './matmul'

/**
 * In place: symmetric A (n×n, row-major; only the upper triangle and diagonal are read) → its lower
 * Cholesky factor, upper triangle zeroed. Returns 0, or j + 1 when the pivot of column j is not positive
 * (A's contents are then unspecified).
 */
export function choleskyLower(A: Float64Array, n: number): number {
  requireSizes('cholesky_lower', { n })
  requireLength('cholesky_lower', 'A', A, n * n)
  for (let j = 0; j < n; j++) {
    const rj = j * n
    let d = A[rj + j]
    for (let k = 0; k < j; k++) d -= A[rj + k] * A[rj + k]
    if (!(d > 0)) return j + 1
    const ljj = Math.sqrt(d)
    A[rj + j] = ljj
    for (let i = j + 1; i < n; i++) {
      const ri = i * n
      let s = A[rj + i] // A[j][i] of the upper triangle, not yet overwritten: row j's upper part is zeroed below
      for (let k = 0; k < j; k++) s -= A[rj + k] * A[ri + k]
      A[ri + j] = s / ljj
    }
    for (let k = j + 1; k < n; k++) A[rj + k] = 0
  }
  return 0
}

/** In place: lower-triangular L (n×n) → L⁻¹; the upper triangle is neither read nor written. */
export function invertLower(L: Float64Array, n: number): void {
  requireSizes('invert_lower', { n })
  requireLength('invert_lower', 'L', L, n * n)
  // Column by column: X[k][j] for k < i is final before row i needs it, and L[i][k] (k ≥ j) is still L.
  for (let j = 0; j < n; j++) {
    L[j * n + j] = 1 / L[j * n + j]
    for (let i = j + 1; i < n; i++) {
      let s = 0
      for (let k = j; k < i; k++) s -= L[i * n + k] * L[k * n + j]
      L[i * n + j] = s / L[i * n + i]
    }
  }
}

const f32 = Math.fround

/** Round half to even (the kernel's f32.nearest) of an f32 value. */
function nearestEven(x: number): number {
  const r = Math.round(x)
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r
}

/**
 * Twin of gptq_block_rows: GPTQ's column loop inside the block [c0, c0 + count), rows [r0, r1), its columns
 * [c0 + from, c0 + to) of W [rows, cols] quantized in place on per-row grids (scale, zero) with errors into err [rows, B] and
 * feedback through the block's diagonal block U [B, B] of the inverse factor. Every operation in f32.
 */
export function gptqBlockRows(
  W: Float32Array,
  cols: number,
  c0: number,
  count: number,
  from: number,
  to: number,
  U: Float32Array,
  B: number,
  err: Float32Array,
  grids: Float32Array,
  maxq: number,
  r0: number,
  r1: number,
  zeroMask: Uint8Array | null = null,
): void {
  requireSizes('gptq_block_rows', { cols, c0, count, from, to, B, r0, r1 })
  if (count > B || c0 + count > cols || r0 > r1 || from > to || to > count)
    throw kernelArgError('gptq_block_rows', `columns [${c0}, ${c0 + count}) or rows [${r0}, ${r1}) out of range`)
  requireLength('gptq_block_rows', 'W', W, r1 * cols)
  requireLength('gptq_block_rows', 'U', U, B * B)
  requireLength('gptq_block_rows', 'err', err, r1 * B)
  requireLength('gptq_block_rows', 'grids', grids, r1 * 2)
  if (zeroMask) requireLength('gptq_block_rows', 'zeroMask', zeroMask, r1 * B)
  for (let r = r0; r < r1; r++) {
    const row = r * cols + c0
    const scale = grids[2 * r],
      zero = grids[2 * r + 1]
    for (let i = from; i < to; i++) {
      const w = W[row + i]
      const kept = zeroMask && zeroMask[r * B + i] ? 0 : w
      const code = Math.min(maxq, Math.max(0, f32(nearestEven(f32(kept / scale)) + zero)))
      const q = f32(scale * f32(code - zero))
      W[row + i] = q
      const e = f32(f32(w - q) / U[i * B + i])
      err[r * B + i] = e
      for (let j = i + 1; j < count; j++) W[row + j] = f32(W[row + j] - f32(e * U[i * B + j]))
    }
  }
}
