// The 1-D weighted k-means against cases worked by hand (init, each Lloyd step, relocation), and its
// fixed-point property on random data checked by an independent brute-force pass.

import { describe, expect, it } from 'vitest'
import { WhittleError } from '../../errors'
import { seededRandom } from '../../train/seeded-random'
import { nearestCentroid, weightedKMeans1D } from './kmeans'

describe('nearestCentroid', () => {
  it('picks the nearest, the lower one halfway and the first of equal centroids', () => {
    const c = [-1, 0, 2, 2, 5]
    expect(nearestCentroid(c, -7)).toBe(0)
    expect(nearestCentroid(c, -0.5)).toBe(0) // halfway between −1 and 0
    expect(nearestCentroid(c, -0.4)).toBe(1)
    expect(nearestCentroid(c, 1)).toBe(1) // halfway between 0 and 2
    expect(nearestCentroid(c, 1.01)).toBe(2)
    expect(nearestCentroid(c, 2)).toBe(2) // 2 appears twice: the first
    expect(nearestCentroid(c, 3.6)).toBe(4)
    expect(nearestCentroid(c, 99)).toBe(4)
  })
})

describe('weightedKMeans1D', () => {
  it('splits two obvious clusters', () => {
    const r = weightedKMeans1D([11, 0, 10, 1], null, 2)
    expect(Array.from(r.centroids)).toEqual([0.5, 10.5])
    expect(Array.from(r.codes)).toEqual([1, 0, 1, 0])
    expect(r.objective).toBeCloseTo(1, 12)
  })

  it('follows the hand-worked Lloyd steps from the quantile init', () => {
    // Quantile init over 6 equal weights: targets 1, 3, 5 → values 0, 3, 8.
    // Steps: {0}{2,3}{7,8,20} → (0, 2.5, 11.67); {0}{2,3,7}{8,20} → (0, 4, 14);
    // {0,2}{3,7,8}{20} → (1, 6, 20); {0,2,3}{7,8}{20} → (5/3, 7.5, 20); then nothing moves.
    const r = weightedKMeans1D([0, 2, 3, 7, 8, 20], null, 3)
    expect(r.centroids[0]).toBeCloseTo(5 / 3, 12)
    expect(r.centroids[1]).toBeCloseTo(7.5, 12)
    expect(r.centroids[2]).toBeCloseTo(20, 12)
    expect(Array.from(r.codes)).toEqual([0, 0, 0, 1, 1, 2])
    expect(r.iterations).toBe(4)
    expect(r.objective).toBeCloseTo(42 / 9 + 0.5, 12)
  })

  it('weights pull the centroids, and an empty cluster is relocated to the worst-served value', () => {
    // Weights 1, 3, 1 (total 5): quantile targets 1.25 and 3.75 both land on the value 1, so the
    // second centroid starts as a duplicate, gets nothing, and moves to 10 (the largest w·d²).
    // Then {0, 1} → (0·1 + 1·3) / 4 = 0.75 and {10} → 10.
    const r = weightedKMeans1D([0, 1, 10], [1, 3, 1], 2)
    expect(Array.from(r.centroids)).toEqual([0.75, 10])
    expect(Array.from(r.codes)).toEqual([0, 0, 1])
    expect(r.objective).toBeCloseTo(1 * 0.75 ** 2 + 3 * 0.25 ** 2, 12)
    expect(r.iterations).toBe(2)
    // Without the weights the same data splits the same way, with the unweighted mean.
    expect(Array.from(weightedKMeans1D([0, 1, 10], null, 2).centroids)).toEqual([0.5, 10])
  })

  it('a heavy weight draws its centroid onto its value', () => {
    const r = weightedKMeans1D([0, 1, 2, 3], [1, 1, 1000, 1], 2)
    // {0, 1} and {2, 3}: the second centroid is (2·1000 + 3) / 1001.
    expect(r.centroids[1]).toBeCloseTo(2003 / 1001, 12)
  })

  it('all-zero weights count as equal weights', () => {
    const a = weightedKMeans1D([0, 2, 3, 7, 8, 20], [0, 0, 0, 0, 0, 0], 3)
    const b = weightedKMeans1D([0, 2, 3, 7, 8, 20], null, 3)
    expect(Array.from(a.centroids)).toEqual(Array.from(b.centroids))
  })

  it('fewer distinct values than k: each is a centroid, the table padded with the largest', () => {
    const r = weightedKMeans1D([5, 2, 2], null, 4)
    expect(Array.from(r.centroids)).toEqual([2, 5, 5, 5])
    expect(Array.from(r.codes)).toEqual([1, 0, 0])
    expect(r.objective).toBe(0)
  })

  it('takes starting centroids in any order', () => {
    const r = weightedKMeans1D([0, 2, 3, 7, 8, 20], null, 3, { init: [20, 0, 7] })
    // {0, 2, 3} {7, 8} {20} at once, and nothing moves after.
    expect(Array.from(r.centroids).map((v) => +v.toFixed(12))).toEqual([+(5 / 3).toFixed(12), 7.5, 20])
    expect(r.iterations).toBe(1)
  })

  it('ends at a fixed point: every value at its nearest centroid, every centroid its cluster’s weighted mean', () => {
    const rnd = seededRandom(7)
    const n = 500
    const values = Float64Array.from({ length: n }, () => (rnd() - 0.5) * (rnd() < 0.05 ? 20 : 2))
    const weights = Float64Array.from({ length: n }, () => rnd() ** 3)
    const r = weightedKMeans1D(values, weights, 8)
    for (let j = 1; j < 8; j++) expect(r.centroids[j]).toBeGreaterThan(r.centroids[j - 1])
    const sw = new Float64Array(8),
      swx = new Float64Array(8)
    let objective = 0
    for (let i = 0; i < n; i++) {
      // brute force: the nearest of all eight
      let best = 0
      for (let j = 1; j < 8; j++)
        if (Math.abs(values[i] - r.centroids[j]) < Math.abs(values[i] - r.centroids[best])) best = j
      expect(r.codes[i]).toBe(best)
      sw[best] += weights[i]
      swx[best] += weights[i] * values[i]
      objective += weights[i] * (values[i] - r.centroids[best]) ** 2
    }
    for (let j = 0; j < 8; j++) expect(r.centroids[j]).toBeCloseTo(swx[j] / sw[j], 10)
    expect(r.objective).toBeCloseTo(objective, 10)
    // Lloyd never does worse than its starting point.
    const once = weightedKMeans1D(values, weights, 8, { maxIterations: 1 })
    expect(r.objective).toBeLessThanOrEqual(once.objective)
  })

  it('refuses bad input with a typed error', () => {
    expect(() => weightedKMeans1D([], null, 2)).toThrow(WhittleError)
    expect(() => weightedKMeans1D([1, NaN], null, 2)).toThrow(/not finite/)
    expect(() => weightedKMeans1D([1, 2], [1, -1], 2)).toThrow(/≥ 0/)
    expect(() => weightedKMeans1D([1, 2], [1], 2)).toThrow(/1 weights for 2 values/)
    expect(() => weightedKMeans1D([1, 2], null, 0)).toThrow(/k must be/)
  })
})
