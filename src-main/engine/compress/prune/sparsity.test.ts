import { describe, expect, it } from 'vitest'
import { checkNm, maskThumbnail, zeroFraction } from './sparsity'

describe('sparsity measures', () => {
  it('counts zeros', () => {
    expect(zeroFraction(Float32Array.from([0, 1, 0, -0, 2]))).toBeCloseTo(3 / 5, 12)
    expect(zeroFraction(new Float32Array(0))).toBe(0)
  })

  it('accepts a 2:4 pattern and counts every group that breaks it', () => {
    // 2 rows × 8 cols: row 0 holds 2 non-zeros per group of 4; row 1's second group holds 3.
    const ok = Float32Array.from([1, 0, 2, 0, 0, 3, 0, 4, 0, 0, 5, 6, 7, 8, 0, 9])
    expect(checkNm(ok, 2, 8, 2, 4)).toEqual({ n: 2, m: 4, violations: 1, groups: 4, valid: false })
    ok[13] = 0
    expect(checkNm(ok, 2, 8, 2, 4).valid).toBe(true)
    // A ragged last group (cols = 6, m = 4) is held to N as well.
    expect(checkNm(Float32Array.from([1, 0, 0, 1, 1, 1]), 1, 6, 2, 4).violations).toBe(0)
    expect(checkNm(Float32Array.from([1, 0, 0, 1, 1, 1]), 1, 6, 1, 4).violations).toBe(2)
  })

  it('pools the mask density into thumbnail cells', () => {
    // 4×4, left half zero: a 2×2 thumbnail is [0, 1; 0, 1].
    const W = Float32Array.from({ length: 16 }, (_, i) => (i % 4 < 2 ? 0 : 1))
    expect(maskThumbnail(W, 4, 4, 2)).toEqual({ rows: 2, cols: 2, density: [0, 1, 0, 1] })
    expect(maskThumbnail(W, 4, 4, 8).rows).toBe(4)
  })
})
