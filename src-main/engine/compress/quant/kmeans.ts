// One-dimensional weighted k-means (Lloyd's algorithm), the shared piece of the non-uniform quantizers
// (SqueezeLLM's per-row lookup tables, GOBO's per-tensor centroids).
//
// Deterministic, so a recipe re-run gives the same tables:
// - init: weighted quantiles. Centroid j starts at the smallest value whose cumulative weight (values
//   in ascending order) reaches (j + 1/2)/k of the total: the centroids start spread over the mass;
// - assignment: each value to its nearest centroid; a value exactly halfway goes to the lower one;
// - update: each centroid becomes the weighted mean of its values (sums in f64);
// - a centroid left with no weight (an empty cluster, or duplicated by the init) moves to the value
//   with the largest weighted squared error (the lowest such value on ties), as scikit-learn relocates;
// - stop when no assignment changes, or after maxIterations.
// In 1-D the clusters of sorted centroids are runs of the sorted values, so assignment is one sweep.
// Weights ≥ 0; all zero means equal weights. Fewer distinct values than k: each is its own centroid
// and the table is padded with copies of the largest.

import { WhittleError } from '../../errors'

export interface KMeansOptions {
  /** Lloyd iterations at most (default 100). */
  maxIterations?: number
  /** Starting centroids instead of the weighted quantiles (any order; k of them). */
  init?: ArrayLike<number>
}

export interface KMeansResult {
  /** k centroids, ascending (f64 values; callers round them to their storage type). */
  centroids: Float64Array
  /** Per input value, the index of its centroid. */
  codes: Uint8Array
  /** Σ weight · (value − centroid)², with the weights used (equal ones when all were zero). */
  objective: number
  iterations: number
}

const DEFAULT_ITERATIONS = 100

/**
 * Index of the centroid nearest to x in ascending `centroids`; on equal distance (a value halfway, or
 * equal centroids) the lowest index.
 */
export function nearestCentroid(centroids: ArrayLike<number>, x: number): number {
  const k = centroids.length
  let q: number
  if (x <= centroids[0]) q = 0
  else if (x >= centroids[k - 1]) q = k - 1
  else {
    // centroids[lo] ≤ x < centroids[hi]
    let lo = 0,
      hi = k - 1
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1
      if (centroids[mid] <= x) lo = mid
      else hi = mid
    }
    q = centroids[hi] - x < x - centroids[lo] ? hi : lo
  }
  while (q > 0 && centroids[q - 1] === centroids[q]) q--
  return q
}

/** Clusters `values` into k centroids, minimising Σ w·(x − c)². */
export function weightedKMeans1D(
  values: ArrayLike<number>,
  weights: ArrayLike<number> | null,
  k: number,
  options: KMeansOptions = {},
): KMeansResult {
  const n = values.length
  if (!Number.isInteger(k) || k < 1 || k > 256)
    throw new WhittleError('validation', null, `k-means: k must be an integer in [1, 256] (got ${k})`)
  if (n === 0) throw new WhittleError('validation', null, 'k-means: no values to cluster')
  if (weights && weights.length !== n)
    throw new WhittleError('validation', null, `k-means: ${weights.length} weights for ${n} values`)
  let total = 0
  for (let i = 0; i < n; i++) {
    if (!Number.isFinite(values[i]))
      throw new WhittleError('validation', null, `k-means: value ${i} is not finite (${values[i]})`)
    const w = weights ? weights[i] : 1
    if (!(w >= 0) || !Number.isFinite(w))
      throw new WhittleError('validation', null, `k-means: weight ${i} must be finite and ≥ 0 (got ${w})`)
    total += w
  }
  const weightOf = total > 0 && weights ? (i: number): number => weights[i] : (): number => 1
  if (!(total > 0) || !weights) total = n

  // Sorted order of the values: clusters are runs of it.
  const order = Uint32Array.from({ length: n }, (_, i) => i).sort((a, b) => values[a] - values[b] || a - b)
  const x = Float64Array.from(order, (i) => values[i])
  const w = Float64Array.from(order, (i) => weightOf(i))

  const distinct: number[] = []
  for (let i = 0; i < n; i++) if (i === 0 || x[i] !== x[i - 1]) distinct.push(x[i])
  if (distinct.length <= k) {
    const centroids = new Float64Array(k).fill(distinct[distinct.length - 1])
    centroids.set(distinct)
    const codes = new Uint8Array(n)
    for (let i = 0; i < n; i++) codes[i] = nearestCentroid(centroids, values[i])
    return { centroids, codes, objective: 0, iterations: 0 }
  }

  const c = new Float64Array(k)
  if (options.init) {
    if (options.init.length !== k)
      throw new WhittleError('validation', null, `k-means: ${options.init.length} starting centroids for k = ${k}`)
    c.set(Array.from(options.init).sort((a, b) => a - b))
  } else {
    let cum = 0,
      i = 0
    for (let j = 0; j < k; j++) {
      const target = ((j + 0.5) / k) * total
      while (i < n - 1 && cum + w[i] < target) cum += w[i++]
      c[j] = x[i]
    }
  }

  // assign[s]: the cluster of sorted value s under the current centroids.
  const assign = new Int32Array(n).fill(-1)
  const maxIterations = options.maxIterations ?? DEFAULT_ITERATIONS
  let iterations = 0
  let relocated = false
  while (iterations < maxIterations) {
    let changed = false
    for (let s = 0; s < n; s++) {
      const q = nearestCentroid(c, x[s])
      if (assign[s] !== q) {
        assign[s] = q
        changed = true
      }
    }
    if (!changed && !relocated) break
    iterations++
    const sw = new Float64Array(k),
      swx = new Float64Array(k)
    for (let s = 0; s < n; s++) {
      sw[assign[s]] += w[s]
      swx[assign[s]] += w[s] * x[s]
    }
    for (let q = 0; q < k; q++) if (sw[q] > 0) c[q] = swx[q] / sw[q]
    relocated = false
    const served = new Uint8Array(n)
    for (let q = 0; q < k; q++) {
      if (sw[q] > 0) continue
      // Relocate an empty centroid to the worst-served value not already taken by another relocation.
      let worst = -1,
        worstErr = -1
      for (let s = 0; s < n; s++) {
        if (served[s]) continue
        const d = x[s] - c[assign[s]]
        const e = w[s] * d * d
        if (e > worstErr) {
          worstErr = e
          worst = s
        }
      }
      if (worst < 0) break
      served[worst] = 1
      c[q] = x[worst]
      relocated = true
    }
    c.sort()
  }

  const centroids = c
  const codes = new Uint8Array(n)
  let objective = 0
  for (let s = 0; s < n; s++) {
    const q = nearestCentroid(centroids, x[s])
    codes[order[s]] = q
    const d = x[s] - centroids[q]
    objective += w[s] * d * d
  }
  return { centroids, codes, objective, iterations }
}
