// Eigen-decomposition of a symmetric matrix by the cyclic Jacobi method, in f64: rotations zero the
// off-diagonal entries one pair at a time until they are negligible. Simple and accurate; O(n³) per
// sweep with a handful of sweeps, which suits the Gram matrices of one Linear up to ~1–2k on a side
// (seconds to a minute in JS); the low-rank method uses it on the smaller side of W.

import { WhittleError } from '../../errors'

export interface SymmetricEigen {
  /** Eigenvalues, descending. */
  values: Float64Array
  /** Eigenvectors as columns of an n × n row-major matrix, in the order of `values`. */
  vectors: Float64Array
}

export function symmetricEigen(A: Float64Array, n: number, maxSweeps = 60): SymmetricEigen {
  if (A.length !== n * n)
    throw new WhittleError('validation', null, `symmetricEigen: ${A.length} values are not ${n}×${n}`)
  const a = A.slice()
  const v = new Float64Array(n * n)
  for (let i = 0; i < n; i++) v[i * n + i] = 1
  let scale = 0
  for (let i = 0; i < n * n; i++) scale += a[i] * a[i]
  const tol = 1e-22 * Math.max(scale, Number.MIN_VALUE)
  for (let sweep = 0; sweep < maxSweeps; sweep++) {
    let off = 0
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += a[p * n + q] * a[p * n + q]
    if (off <= tol) break
    for (let p = 0; p < n - 1; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = a[p * n + q]
        if (apq === 0) continue
        // The rotation angle that zeroes a[p][q] (the smaller root, for stability).
        const theta = (a[q * n + q] - a[p * n + p]) / (2 * apq)
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1))
        const c = 1 / Math.sqrt(t * t + 1),
          s = t * c
        for (let k = 0; k < n; k++) {
          const akp = a[k * n + p],
            akq = a[k * n + q]
          a[k * n + p] = c * akp - s * akq
          a[k * n + q] = s * akp + c * akq
        }
        for (let k = 0; k < n; k++) {
          const apk = a[p * n + k],
            aqk = a[q * n + k]
          a[p * n + k] = c * apk - s * aqk
          a[q * n + k] = s * apk + c * aqk
        }
        for (let k = 0; k < n; k++) {
          const vkp = v[k * n + p],
            vkq = v[k * n + q]
          v[k * n + p] = c * vkp - s * vkq
          v[k * n + q] = s * vkp + c * vkq
        }
      }
    }
  }
  const order = Array.from({ length: n }, (_, i) => i).sort((x, y) => a[y * n + y] - a[x * n + x])
  const values = Float64Array.from(order, (i) => a[i * n + i])
  const vectors = new Float64Array(n * n)
  for (let r = 0; r < n; r++) order.forEach((i, j) => (vectors[r * n + j] = v[r * n + i]))
  return { values, vectors }
}
