// GOBO on hand-worked tensors: the outliers beyond the threshold, the body's centroids from the
// Gaussian-quantile start, and the storage it counts.

import { describe, expect, it } from 'vitest'
import { gobo, goboBitsPerWeight, goboQuantize, normalQuantile } from './gobo'

describe('GOBO', () => {
  it('Φ⁻¹ matches the normal table', () => {
    expect(normalQuantile(0.5)).toBeCloseTo(0, 6)
    expect(normalQuantile(0.975)).toBeCloseTo(1.959964, 5)
    expect(normalQuantile(0.125)).toBeCloseTo(-1.150349, 5)
  })

  it('keeps the weight beyond the threshold and clusters the body by hand', () => {
    // Body: −1, −0.5, 0, 0.5, 1, four times; one outlier 10. Mean 10/21, σ² = 110/21 − (10/21)²
    // (σ ≈ 2.24): 10 lies 4.3σ out, the body within 0.7σ.
    const body = [-1, -0.5, 0, 0.5, 1]
    const W = Float32Array.from([...body, ...body, ...body, ...body, 10])
    const q = goboQuantize(W, { bits: 1, threshold: 2 })
    expect(Array.from(q.outlierIndex)).toEqual([20])
    expect(q.mean).toBeCloseTo(10 / 21, 12)
    expect(q.std).toBeCloseTo(Math.sqrt(110 / 21 - (10 / 21) ** 2), 12)
    // Start μ ± 0.674σ, clipped to the body: −1 and 1. {−1, −0.5, 0} (0 is halfway: the lower) and
    // {0.5, 1}: centroids −0.5 and 0.75, and nothing moves after.
    expect(Array.from(q.centroids)).toEqual([-0.5, 0.75])
    expect(Array.from(W.subarray(0, 5))).toEqual([-0.5, -0.5, -0.5, 0.75, 0.75])
    expect(W[20]).toBe(10)
  })

  it('a wider threshold keeps no outlier', () => {
    const W = Float32Array.from([-1, -0.5, 0, 0.5, 1, 10])
    expect(goboQuantize(W, { bits: 2, threshold: 5 }).outlierIndex).toHaveLength(0)
  })

  it('counts body codes, fp32 centroids and 64 bits per outlier', () => {
    // 21 weights, 1 outlier, 2 bits: (20·2 + 64 + 4·32) / 21
    expect(goboBitsPerWeight(2, 21, 1)).toBe((40 + 64 + 128) / 21)
    const p = gobo.parseParams({}, 'test')
    expect(p).toEqual({ bits: 3, threshold: 3 })
    // predicted outliers: the Gaussian's mass beyond ±3σ, 0.27%, of 4096 weights → 11
    expect(gobo.predict(p, 64, 64).bitsPerWeight).toBeCloseTo(goboBitsPerWeight(3, 4096, 11), 12)
  })
})
