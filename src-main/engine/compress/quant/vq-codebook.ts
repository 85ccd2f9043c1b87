// Vector-quantization codebooks (GPTVQ, van Baalen et al. 2024): k centroids in d dimensions fitted to
// a group's weight vectors (d consecutive columns of one row) by weighted k-means, the EM the paper
// initializes from the data. Each coordinate of each point carries its own importance weight (GPTVQ:
// the inverse of the column's inverse-Hessian diagonal), so distances are diagonal Mahalanobis
// distances Σ_t w_t (x_t − c_t)² and each centroid's update is the per-coordinate weighted mean.
// Initialization as the paper's default: sort the points by their Mahalanobis distance from the mean
// (covariance of the points) and take k evenly spaced ones. Stored codebooks are f16, or int8 with one
// symmetric f16 scale per codebook (the paper's codebook quantization).

import { roundHalfEven } from '../../numerics/rounding'
import { roundToF16 } from '../../numerics/float-encodings'

const f = Math.fround

/** Points of one group: n vectors of d values, each value with its importance weight (> 0). */
export interface VqPoints {
  n: number
  d: number
  /** n × d, row-major. */
  values: Float32Array
  /** n × d importance weights of the values. */
  weights: Float32Array
}

/**
 * Index of the centroid (k × d) nearest to the point values[at, at + d) under the weights
 * weights[wAt, wAt + d); ties to the lower index.
 */
export function nearestCentroid(
  values: ArrayLike<number>,
  at: number,
  weights: ArrayLike<number>,
  wAt: number,
  centroids: Float32Array,
  d: number,
): number {
  const k = centroids.length / d
  let best = 0
  let bestDist = Infinity
  if (d === 2) {
    // The common case, unrolled: this loop is most of GPTVQ's time.
    const x0 = values[at],
      x1 = values[at + 1],
      w0 = weights[wAt],
      w1 = weights[wAt + 1]
    for (let j = 0; j < k; j++) {
      const e0 = x0 - centroids[2 * j],
        e1 = x1 - centroids[2 * j + 1]
      const dist = w0 * e0 * e0 + w1 * e1 * e1
      if (dist < bestDist) {
        bestDist = dist
        best = j
      }
    }
    return best
  }
  for (let j = 0; j < k; j++) {
    let dist = 0
    for (let t = 0; t < d; t++) {
      const e = values[at + t] - centroids[j * d + t]
      dist += weights[wAt + t] * e * e
    }
    if (dist < bestDist) {
      bestDist = dist
      best = j
    }
  }
  return best
}

/** Inverse of a small symmetric d × d matrix by Gauss-Jordan; a ridge keeps a degenerate one invertible. */
function invertSmall(A: Float64Array, d: number): Float64Array {
  let trace = 0
  for (let i = 0; i < d; i++) trace += A[i * d + i]
  const M = A.slice()
  const ridge = Math.max(1e-12, 1e-9 * (trace / d))
  for (let i = 0; i < d; i++) M[i * d + i] += ridge
  const inv = new Float64Array(d * d)
  for (let i = 0; i < d; i++) inv[i * d + i] = 1
  for (let col = 0; col < d; col++) {
    let pivot = col
    for (let r = col + 1; r < d; r++) if (Math.abs(M[r * d + col]) > Math.abs(M[pivot * d + col])) pivot = r
    for (let c = 0; c < d; c++) {
      ;[M[col * d + c], M[pivot * d + c]] = [M[pivot * d + c], M[col * d + c]]
      ;[inv[col * d + c], inv[pivot * d + c]] = [inv[pivot * d + c], inv[col * d + c]]
    }
    const p = M[col * d + col]
    for (let c = 0; c < d; c++) {
      M[col * d + c] /= p
      inv[col * d + c] /= p
    }
    for (let r = 0; r < d; r++) {
      if (r === col) continue
      const factor = M[r * d + col]
      for (let c = 0; c < d; c++) {
        M[r * d + c] -= factor * M[col * d + c]
        inv[r * d + c] -= factor * inv[col * d + c]
      }
    }
  }
  return inv
}

/**
 * k starting centroids: the points at k evenly spaced ranks (rounded) of their Mahalanobis distance
 * from the mean, so the start covers the body and the tails alike. Needs n ≥ 1.
 */
export function mahalanobisInit(p: VqPoints, k: number): Float32Array {
  const { n, d, values } = p
  const mean = new Float64Array(d)
  for (let i = 0; i < n; i++) for (let t = 0; t < d; t++) mean[t] += values[i * d + t] / n
  const cov = new Float64Array(d * d)
  for (let i = 0; i < n; i++)
    for (let a = 0; a < d; a++)
      for (let b = 0; b < d; b++) cov[a * d + b] += (values[i * d + a] - mean[a]) * (values[i * d + b] - mean[b])
  const inv = invertSmall(cov, d)
  const dist = new Float64Array(n)
  for (let i = 0; i < n; i++) {
    let s = 0
    for (let a = 0; a < d; a++)
      for (let b = 0; b < d; b++) s += (values[i * d + a] - mean[a]) * inv[a * d + b] * (values[i * d + b] - mean[b])
    dist[i] = s
  }
  const order = Int32Array.from({ length: n }, (_, i) => i).sort((a, b) => dist[a] - dist[b] || a - b)
  const out = new Float32Array(k * d)
  for (let j = 0; j < k; j++) {
    const rank = k === 1 ? 0 : roundHalfEven((j * (n - 1)) / (k - 1))
    out.set(values.subarray(order[rank] * d, order[rank] * d + d), j * d)
  }
  return out
}

/** Σ over points of the weighted squared distance to their centroid. */
export function codebookLoss(p: VqPoints, centroids: Float32Array, assignments: Int32Array): number {
  let loss = 0
  for (let i = 0; i < p.n; i++)
    for (let t = 0; t < p.d; t++) {
      const e = p.values[i * p.d + t] - centroids[assignments[i] * p.d + t]
      loss += p.weights[i * p.d + t] * e * e
    }
  return loss
}

export interface FittedCodebook {
  /** k × d (f32). */
  centroids: Float32Array
  /** Each point's centroid. */
  assignments: Int32Array
  /** EM iterations run (fewer than asked when the assignments stopped changing). */
  iterations: number
}

/**
 * Weighted k-means (Lloyd's EM) from `init` (k × d, not modified): assign each point to its nearest
 * centroid under its weights, move each centroid to the weighted mean of its points per coordinate; a
 * centroid left without points stays where it was. Stops after `iters` rounds or when no assignment changes.
 */
export function weightedKmeans(p: VqPoints, init: Float32Array, iters: number): FittedCodebook {
  const { n, d, values, weights } = p
  const k = init.length / d
  const centroids = init.slice()
  const assignments = new Int32Array(n).fill(-1)
  const num = new Float64Array(k * d)
  const den = new Float64Array(k * d)
  let iterations = 0
  for (; iterations < iters; iterations++) {
    let changed = 0
    for (let i = 0; i < n; i++) {
      const j = nearestCentroid(values, i * d, weights, i * d, centroids, d)
      if (j !== assignments[i]) changed++
      assignments[i] = j
    }
    if (changed === 0) break
    num.fill(0)
    den.fill(0)
    for (let i = 0; i < n; i++) {
      const j = assignments[i]
      for (let t = 0; t < d; t++) {
        num[j * d + t] += weights[i * d + t] * values[i * d + t]
        den[j * d + t] += weights[i * d + t]
      }
    }
    for (let c = 0; c < k * d; c++) if (den[c] > 0) centroids[c] = f(num[c] / den[c])
  }
  // The final assignment of the centroids returned.
  for (let i = 0; i < n; i++) assignments[i] = nearestCentroid(values, i * d, weights, i * d, centroids, d)
  return { centroids, assignments, iterations }
}

/** Mahalanobis initialization, then weighted k-means: the codebook of k entries for one group's points. */
export function fitCodebook(p: VqPoints, k: number, iters: number): FittedCodebook {
  if (p.n === 0) return { centroids: new Float32Array(k * p.d), assignments: new Int32Array(0), iterations: 0 }
  return weightedKmeans(p, mahalanobisInit(p, k), iters)
}

/** How a codebook is stored: f16 entries, or int8 entries times one f16 scale per codebook. */
export type CodebookDtype = 'int8' | 'f16'

/** Storage bits of one codebook of k entries in d dimensions. */
export function codebookBits(k: number, d: number, dtype: CodebookDtype): number {
  return dtype === 'int8' ? k * d * 8 + 16 : k * d * 16
}

/**
 * The codebook as stored, in place: f16 rounds each entry; int8 scales by s = max|c| / 127 (rounded to
 * f16, as stored) and rounds c / s half to even into [−127, 127]. Returns the scale (1 for f16).
 */
export function storeCodebook(centroids: Float32Array, dtype: CodebookDtype): number {
  if (dtype === 'f16') {
    for (let i = 0; i < centroids.length; i++) centroids[i] = roundToF16(centroids[i])
    return 1
  }
  let absmax = 0
  for (const c of centroids) absmax = Math.max(absmax, Math.abs(c))
  if (absmax === 0) return 1
  let scale = roundToF16(absmax / 127)
  // f16 rounding may shrink the scale below absmax / 127; the codes still clamp to the int8 range.
  if (scale === 0) scale = 2 ** -24
  for (let i = 0; i < centroids.length; i++)
    centroids[i] = f(Math.max(-127, Math.min(127, roundHalfEven(centroids[i] / scale))) * scale)
  return scale
}
