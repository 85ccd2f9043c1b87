// The pieces of Bonsai's importance estimate that need no model: the ridge fit (against coefficients it
// must recover, and against its own optimality condition) and the antithetic sampling of sub-models.

import { describe, expect, it } from 'vitest'
import { seededRandom } from '../../train/seeded-random'
import { ridgeRegression, sampleMasks } from './unit-importance'
import type { UnitMask } from './unit-masks'

function design(S: number, U: number, seed: number): Float64Array {
  const random = seededRandom(seed)
  return Float64Array.from({ length: S * U }, () => (random() < 0.5 ? 1 : 0))
}

describe('ridge regression of losses on keep masks', () => {
  it('recovers the coefficients of an exactly linear response (more samples than units)', () => {
    const S = 60,
      U = 12
    const X = design(S, U, 1)
    const beta = Array.from({ length: U }, (_, u) => (u % 3) - 1 + u / 10)
    const y = Float64Array.from({ length: S }, (_, s) => 3.5 + beta.reduce((a, b, u) => a + b * X[s * U + u], 0))
    const fit = ridgeRegression(X, y, S, U, 1e-9)
    for (let u = 0; u < U; u++) expect(fit[u]).toBeCloseTo(beta[u], 6)
  })

  it('meets the ridge optimality condition Xcᵀ(yc − Xc β) = λβ in both forms (fewer and more samples than units)', () => {
    for (const [S, U] of [
      [10, 30],
      [40, 15],
    ]) {
      const X = design(S, U, S)
      const random = seededRandom(7)
      const y = Float64Array.from({ length: S }, () => random() * 4)
      const lambda = 0.7
      const beta = ridgeRegression(X, y, S, U, lambda)
      const mean = (f: (s: number) => number): number =>
        Array.from({ length: S }, (_, s) => f(s)).reduce((a, b) => a + b) / S
      const colMean = Array.from({ length: U }, (_, u) => mean((s) => X[s * U + u]))
      const yMean = mean((s) => y[s])
      const residual = Array.from(
        { length: S },
        (_, s) => y[s] - yMean - beta.reduce((a, b, u) => a + b * (X[s * U + u] - colMean[u]), 0),
      )
      for (let u = 0; u < U; u++) {
        const grad = residual.reduce((a, r, s) => a + (X[s * U + u] - colMean[u]) * r, 0)
        expect(grad).toBeCloseTo(lambda * beta[u], 9)
      }
    }
  })
})

describe('sub-model sampling', () => {
  const base: UnitMask = { groups: [Uint8Array.of(1, 1, 0, 1)], neurons: [Uint8Array.of(1, 1, 1, 1, 0, 1)] }
  const candidates: UnitMask = { groups: [Uint8Array.of(1, 0, 1, 1)], neurons: [Uint8Array.of(1, 1, 0, 1, 1, 0)] }

  it('draws only candidates still present, in complementary pairs, reproducibly from the seed', () => {
    const masks = sampleMasks(base, candidates, 200, 0.5, 3)
    expect(sampleMasks(base, candidates, 200, 0.5, 3)).toEqual(masks)
    expect(sampleMasks(base, candidates, 200, 0.5, 4)).not.toEqual(masks)
    for (const m of masks) {
      expect(m.groups[0][1]).toBe(1) // present, not a candidate
      expect(m.groups[0][2]).toBe(0) // removed before
      expect(m.neurons[0][2]).toBe(1)
      expect(m.neurons[0][4]).toBe(0)
      expect(m.neurons[0][5]).toBe(1)
    }
    for (let s = 0; s < masks.length; s += 2) {
      expect(masks[s].groups[0][0] + masks[s + 1].groups[0][0]).toBe(1)
      expect(masks[s].neurons[0][3] + masks[s + 1].neurons[0][3]).toBe(1)
    }
    const kept = masks.filter((_, s) => s % 2 === 0).reduce((a, m) => a + m.neurons[0][0], 0)
    expect(kept / 100).toBeGreaterThan(0.35)
    expect(kept / 100).toBeLessThan(0.65)
  })
})
