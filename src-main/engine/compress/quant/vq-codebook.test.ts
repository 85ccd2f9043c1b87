// The codebook fit of GPTVQ against brute force and hand-computed expectations: weighted nearest
// centroids, weighted means, Lloyd's monotone descent, the Mahalanobis-rank start, and the stored forms.

import { describe, expect, it } from 'vitest'
import { roundToF16 } from '../../numerics/float-encodings'
import { lcg } from '../testing/synthetic-layer'
import {
  codebookBits,
  codebookLoss,
  fitCodebook,
  mahalanobisInit,
  nearestCentroid,
  storeCodebook,
  weightedKmeans,
  type VqPoints,
} from './vq-codebook'

function randomPoints(n: number, d: number, seed: number): VqPoints {
  const rnd = lcg(seed)
  return {
    n,
    d,
    values: Float32Array.from({ length: n * d }, () => rnd() + rnd() + rnd()),
    weights: Float32Array.from({ length: n * d }, () => 0.1 + rnd() + 0.5),
  }
}

describe('nearestCentroid', () => {
  it('is the brute-force argmin of the weighted distance, ties to the lower index', () => {
    const p = randomPoints(300, 2, 1)
    const centroids = randomPoints(16, 2, 2).values
    for (let i = 0; i < p.n; i++) {
      const dist = (j: number): number =>
        p.weights[2 * i] * (p.values[2 * i] - centroids[2 * j]) ** 2 +
        p.weights[2 * i + 1] * (p.values[2 * i + 1] - centroids[2 * j + 1]) ** 2
      let best = 0
      for (let j = 1; j < 16; j++) if (dist(j) < dist(best)) best = j
      expect(nearestCentroid(p.values, 2 * i, p.weights, 2 * i, centroids, 2)).toBe(best)
    }
    // Two equal centroids: the first wins.
    expect(nearestCentroid([1, 1], 0, [1, 1], 0, new Float32Array([0, 0, 2, 2, 0, 0]), 2)).toBe(0)
  })

  it('lets the weights decide: a heavy coordinate pulls the choice its way', () => {
    const centroids = new Float32Array([1, 0, 0, 1]) // (1, 0) and (0, 1)
    const x = [0.6, 0.55]
    expect(nearestCentroid(x, 0, [1, 1], 0, centroids, 2)).toBe(0)
    expect(nearestCentroid(x, 0, [1, 10], 0, centroids, 2)).toBe(1)
  })
})

describe('weighted k-means', () => {
  it('with one centroid lands on the per-coordinate weighted mean in one step', () => {
    const p = randomPoints(50, 4, 3)
    const fit = weightedKmeans(p, new Float32Array(4), 5)
    for (let t = 0; t < 4; t++) {
      let num = 0,
        den = 0
      for (let i = 0; i < p.n; i++) {
        num += p.weights[i * 4 + t] * p.values[i * 4 + t]
        den += p.weights[i * 4 + t]
      }
      expect(fit.centroids[t]).toBeCloseTo(num / den, 6)
    }
    expect(fit.iterations).toBe(1)
  })

  it('finds four well-separated clusters and their weighted means', () => {
    const rnd = lcg(4)
    const centres = [
      [-5, -5],
      [-5, 5],
      [5, -5],
      [5, 5],
    ]
    const n = 400
    const values = new Float32Array(n * 2)
    const weights = new Float32Array(n * 2)
    for (let i = 0; i < n; i++) {
      const c = centres[i % 4]
      values[2 * i] = c[0] + rnd()
      values[2 * i + 1] = c[1] + rnd()
      weights[2 * i] = 1 + rnd()
      weights[2 * i + 1] = 1 + rnd()
    }
    // Lloyd's finds the clusters from a start with one point in each (it is a local search).
    const fit = weightedKmeans({ n, d: 2, values, weights }, values.slice(0, 8), 50)
    for (let j = 0; j < 4; j++) {
      let num0 = 0,
        num1 = 0,
        den0 = 0,
        den1 = 0
      for (let i = j; i < n; i += 4) {
        num0 += weights[2 * i] * values[2 * i]
        den0 += weights[2 * i]
        num1 += weights[2 * i + 1] * values[2 * i + 1]
        den1 += weights[2 * i + 1]
      }
      const found = [...Array(4).keys()].filter(
        (c) =>
          Math.abs(fit.centroids[2 * c] - num0 / den0) < 1e-5 &&
          Math.abs(fit.centroids[2 * c + 1] - num1 / den1) < 1e-5,
      )
      expect(found, `cluster ${j}`).toHaveLength(1)
      // Every point of the cluster is assigned to that centroid.
      for (let i = j; i < n; i += 4) expect(fit.assignments[i]).toBe(found[0])
    }
  })

  it('never raises the weighted loss from one EM round to the next', () => {
    const p = randomPoints(2000, 2, 5)
    const init = mahalanobisInit(p, 32)
    let last = Infinity
    for (const iters of [1, 2, 3, 5, 8, 13, 21]) {
      const fit = weightedKmeans(p, init, iters)
      const loss = codebookLoss(p, fit.centroids, fit.assignments)
      expect(loss).toBeLessThanOrEqual(last * (1 + 1e-12))
      last = loss
    }
  })

  it('with no more points than centroids represents every point exactly', () => {
    const p = randomPoints(10, 2, 6)
    const fit = fitCodebook(p, 16, 10)
    expect(codebookLoss(p, fit.centroids, fit.assignments)).toBe(0)
  })
})

describe('Mahalanobis initialization', () => {
  it('takes points of the data at evenly spaced ranks of distance from the mean', () => {
    const p = randomPoints(101, 2, 7)
    const init = mahalanobisInit(p, 5)
    // The distance of each point, computed here from the inverse 2 × 2 covariance.
    let m0 = 0,
      m1 = 0
    for (let i = 0; i < p.n; i++) {
      m0 += p.values[2 * i] / p.n
      m1 += p.values[2 * i + 1] / p.n
    }
    let a = 0,
      b = 0,
      c = 0
    for (let i = 0; i < p.n; i++) {
      const x = p.values[2 * i] - m0,
        y = p.values[2 * i + 1] - m1
      a += x * x
      b += x * y
      c += y * y
    }
    const det = a * c - b * b
    const dist = (i: number): number => {
      const x = p.values[2 * i] - m0,
        y = p.values[2 * i + 1] - m1
      return (c * x * x - 2 * b * x * y + a * y * y) / det
    }
    const order = [...Array(p.n).keys()].sort((i, j) => dist(i) - dist(j))
    for (let j = 0; j < 5; j++) {
      const at = order[j * 25]
      expect([init[2 * j], init[2 * j + 1]]).toEqual([p.values[2 * at], p.values[2 * at + 1]])
    }
  })

  it('survives degenerate data (all points equal)', () => {
    const p: VqPoints = { n: 20, d: 2, values: new Float32Array(40).fill(0.5), weights: new Float32Array(40).fill(1) }
    const fit = fitCodebook(p, 4, 10)
    expect(codebookLoss(p, fit.centroids, fit.assignments)).toBe(0)
  })
})

describe('stored codebooks', () => {
  it('int8: every entry is an integer in [−127, 127] times the f16 scale max|c| / 127, within half a step', () => {
    const c = randomPoints(64, 2, 8).values
    const original = c.slice()
    const scale = storeCodebook(c, 'int8')
    let absmax = 0
    for (const v of original) absmax = Math.max(absmax, Math.abs(v))
    expect(scale).toBe(roundToF16(absmax / 127))
    for (let i = 0; i < c.length; i++) {
      const code = c[i] / scale
      expect(Math.abs(code - Math.round(code))).toBeLessThan(1e-4)
      expect(Math.abs(Math.round(code))).toBeLessThanOrEqual(127)
      expect(Math.abs(c[i] - original[i])).toBeLessThanOrEqual(scale / 2 + Math.abs(absmax / 127 - scale) * 127 + 1e-7)
    }
    const zeros = new Float32Array(8)
    expect(storeCodebook(zeros, 'int8')).toBe(1)
    expect(Array.from(zeros)).toEqual(Array(8).fill(0))
  })

  it('f16: every entry rounded to f16', () => {
    const c = randomPoints(64, 2, 9).values
    const original = c.slice()
    storeCodebook(c, 'f16')
    for (let i = 0; i < c.length; i++) expect(c[i]).toBe(roundToF16(original[i]))
  })

  it('counts k · d entries of 8 bits plus a 16-bit scale, or of 16 bits', () => {
    expect(codebookBits(64, 2, 'int8')).toBe(64 * 2 * 8 + 16)
    expect(codebookBits(256, 4, 'f16')).toBe(256 * 4 * 16)
  })
})
