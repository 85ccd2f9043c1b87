// The f64 linear-algebra kernels (GPTQ/SparseGPT) against their twins, bit for bit, and the twins
// against independent checks (L·Lᵀ = A, L·L⁻¹ = I, a naive Gram product, a naive Hessian). The engine's
// wrappers on a worker pool are tested beside them (compress/linalg/kernels.test.ts,
// calibration/kernel-hessian.test.ts).

import { beforeAll, describe, expect, it } from 'vitest'
import { KernelArgumentError } from '../reference/errors'
import { choleskyLower, hessianAccumulate, invertLower, lowerGram } from '../reference/linalg'
import { identityError, lowerTriangular, multiply, relativeError, spd, transpose } from '../testing/matrices'
import {
  firstBitDifference,
  loadKernels,
  normalish,
  rng,
  withSpecials,
  type KernelHarness,
} from '../testing/kernel-harness'

// 1 … 3 have no full 4×4 tile; 17 and 129 leave edges; 261 and 300 cross the 64-row panels and the
// 256-column blocks.
const SIZES = [1, 2, 3, 17, 64, 129, 261]

let h: KernelHarness
beforeAll(async () => {
  h = await loadKernels()
})

/** Runs a kernel on a copy of `data` placed in kernel memory; returns what the kernel left there. */
function inKernel(data: Float64Array, run: (ptr: number) => void): Float64Array {
  h.reset()
  const ptr = h.put(data)
  run(ptr)
  return h.f64(ptr, data.length).slice()
}

describe('hessian_accumulate', () => {
  it.each(SIZES)('equals the twin bit for bit (K = %i), including special values and sub-ranges of rows', (K) => {
    const r = rng(K * 7 + 1)
    for (const M of [1, 5, 300]) {
      // 300 tokens cross the kernel's 256-token blocks
      const x = withSpecials(normalish(r, M * K, 2), r, 50)
      const start = normalish(r, K * K).map((v) => v) // a non-zero H: the kernel accumulates
      const H0 = Float64Array.from(start)
      const ranges: [number, number][] = [
        [0, K],
        [Math.floor(K / 3), K - Math.floor(K / 5)],
        [K - 1, K],
      ]
      for (const [i0, i1] of ranges) {
        const want = H0.slice()
        hessianAccumulate(x, want, M, K, i0, i1)
        h.reset()
        const xp = h.put(x),
          hp = h.put(H0)
        h.k.hessian_accumulate(xp, hp, M, K, i0, i1)
        expect(firstBitDifference(h.f64(hp, K * K), want)).toBe(-1)
      }
    }
  })

  it('twin: equals a naive per-element sum over tokens, and touches only the upper triangle of its rows', () => {
    const M = 37,
      K = 19,
      i0 = 5,
      i1 = 13
    const x = normalish(rng(3), M * K)
    const H = new Float64Array(K * K).fill(7)
    hessianAccumulate(x, H, M, K, i0, i1)
    for (let i = 0; i < K; i++) {
      for (let j = 0; j < K; j++) {
        let want = 7
        if (i >= i0 && i < i1 && j >= i) for (let t = 0; t < M; t++) want += x[t * K + i] * x[t * K + j]
        expect(H[i * K + j]).toBe(want)
      }
    }
  })

  it('ignores absurd parameters instead of writing out of range', () => {
    h.reset()
    const xp = h.put(new Float32Array([1, 2, 3, 4])),
      hp = h.put(new Float64Array(4).fill(5))
    for (const [M, K, i0, i1] of [
      [0, 2, 0, 2],
      [2, 0, 0, 0],
      [2, 2, -1, 2],
      [2, 2, 0, 3],
      [2, 2, 2, 1],
    ]) {
      h.k.hessian_accumulate(xp, hp, M, K, i0, i1)
    }
    expect(Array.from(h.f64(hp, 4))).toEqual([5, 5, 5, 5])
    expect(() => hessianAccumulate(new Float32Array(4), new Float64Array(4), 2, 2, 0, 3)).toThrow(KernelArgumentError)
  })
})

describe('cholesky_lower', () => {
  it.each(SIZES)('equals the twin bit for bit and L·Lᵀ = A (n = %i)', (n) => {
    const A = spd(n, n)
    const want = A.slice()
    expect(choleskyLower(want, n)).toBe(0)
    let status = -1
    const got = inKernel(A, (p) => {
      status = h.k.cholesky_lower(p, n)
    })
    expect(status).toBe(0)
    expect(firstBitDifference(got, want)).toBe(-1)
    for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) expect(got[i * n + j]).toBe(0)
    expect(relativeError(multiply(got, transpose(got, n), n), A)).toBeLessThan(1e-10)
  })

  it('reads only the upper triangle', () => {
    const n = 70
    const A = spd(n, 5)
    const garbled = A.slice()
    for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) garbled[i * n + j] = NaN
    const clean = inKernel(A, (p) => h.k.cholesky_lower(p, n))
    expect(
      firstBitDifference(
        inKernel(garbled, (p) => h.k.cholesky_lower(p, n)),
        clean,
      ),
    ).toBe(-1)
  })

  it.each([
    [1, 0],
    [17, 9],
    [129, 100],
    [261, 200],
  ])('reports the column of the first non-positive pivot (n = %i, column %i)', (n, bad) => {
    // A = L·Lᵀ with L[bad][bad] replaced so that the pivot at `bad` becomes −1 (and later ones do not matter).
    const L = lowerTriangular(n, n + bad)
    const A = multiply(L, transpose(L, n), n)
    A[bad * n + bad] -= L[bad * n + bad] ** 2 + 1
    expect(choleskyLower(A.slice(), n)).toBe(bad + 1)
    let status = -1
    inKernel(A, (p) => {
      status = h.k.cholesky_lower(p, n)
    })
    expect(status).toBe(bad + 1)
  })

  it('fails on a NaN pivot and on a zero matrix, and does nothing for n ≤ 0', () => {
    const A = spd(9, 2)
    A[4 * 9 + 4] = NaN
    expect(choleskyLower(A.slice(), 9)).toBe(5)
    let status = -1
    inKernel(A, (p) => {
      status = h.k.cholesky_lower(p, 9)
    })
    expect(status).toBe(5)
    inKernel(new Float64Array(16), (p) => {
      status = h.k.cholesky_lower(p, 4)
    })
    expect(status).toBe(1)
    expect(h.k.cholesky_lower(h.alloc(8), 0)).toBe(0)
    expect(h.k.cholesky_lower(h.alloc(8), -3)).toBe(0)
  })
})

describe('invert_lower', () => {
  it.each(SIZES)('equals the twin bit for bit and L·L⁻¹ = I (n = %i)', (n) => {
    const L = lowerTriangular(n, 100 + n)
    // The upper triangle is not part of the input: fill it to see that it is neither read nor written.
    const input = L.slice()
    for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) input[i * n + j] = -123.5
    const want = input.slice()
    invertLower(want, n)
    const got = inKernel(input, (p) => h.k.invert_lower(p, n))
    expect(firstBitDifference(got, want)).toBe(-1)
    const X = got.slice()
    for (let i = 0; i < n; i++)
      for (let j = i + 1; j < n; j++) {
        expect(X[i * n + j]).toBe(-123.5)
        X[i * n + j] = 0
      }
    expect(identityError(multiply(L, X, n), n)).toBeLessThan(1e-10)
    expect(identityError(multiply(X, L, n), n)).toBeLessThan(1e-10)
  })

  it('agrees with the twin on special values (zeros, infinities, NaN) in the matrix', () => {
    const n = 67
    const L = lowerTriangular(n, 9)
    const r = rng(4)
    const specials = [0, -0, Infinity, -Infinity, NaN, 5e-324]
    for (let q = 0; q < 40; q++) {
      const i = 1 + Math.floor(r() * (n - 1)),
        j = Math.floor(r() * i)
      L[i * n + j] = specials[q % specials.length]
    }
    L[30 * n + 30] = -0 // a −0 pivot gives −Infinity, not a trap
    // Zeros right below the diagonal: X[i + 1][i] = (0 − L[i + 1][i]·X[i][i]) / L[i + 1][i + 1] is then a
    // single term, whose sign shows whether the sum really starts at +0.
    for (const i of [3, 4, 40, 41, 60]) L[(i + 1) * n + i] = i % 2 ? -0 : 0
    const want = L.slice()
    invertLower(want, n)
    expect(
      firstBitDifference(
        inKernel(L, (p) => h.k.invert_lower(p, n)),
        want,
      ),
    ).toBe(-1)
  })
})

describe('lower_gram', () => {
  it.each(SIZES)('equals the twin bit for bit, into a separate region and in place (n = %i)', (n) => {
    const L = lowerTriangular(n, 200 + n)
    const want = new Float64Array(n * n)
    lowerGram(L, want, n)
    // The kernel gets NaN in the upper triangle: it must read only the lower one.
    const input = L.slice()
    for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) input[i * n + j] = NaN
    h.reset()
    const lp = h.put(input),
      op = h.put(new Float64Array(n * n).fill(99))
    h.k.lower_gram(lp, op, n)
    expect(firstBitDifference(h.f64(op, n * n), want)).toBe(-1)
    expect(firstBitDifference(h.f64(lp, n * n), input)).toBe(-1) // the input is left alone
    expect(
      firstBitDifference(
        inKernel(input, (p) => h.k.lower_gram(p, p, n)),
        want,
      ),
    ).toBe(-1)
  })

  it('twin: equals Lᵀ·L from a plain product, and ignores the upper triangle of L', () => {
    for (const n of [5, 40]) {
      const L = lowerTriangular(n, 7 * n)
      const naive = multiply(transpose(L, n), L, n)
      const G = new Float64Array(n * n)
      lowerGram(L, G, n)
      expect(relativeError(G, naive)).toBeLessThan(1e-12)
      const garbled = L.slice()
      for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) garbled[i * n + j] = NaN
      const G2 = new Float64Array(n * n)
      lowerGram(garbled, G2, n)
      expect(firstBitDifference(G2, G)).toBe(-1)
      lowerGram(garbled, garbled, n) // in place
      expect(firstBitDifference(garbled, G)).toBe(-1)
    }
  })

  it('agrees with the twin on special values', () => {
    const n = 70
    const L = lowerTriangular(n, 11)
    const specials = [0, -0, Infinity, -Infinity, NaN, 5e-324, -1e300]
    for (let q = 0; q < 30; q++) {
      const i = (q * 37) % n,
        j = (q * 11) % (i + 1)
      L[i * n + j] = specials[q % specials.length]
    }
    // The last row's Gram entries are single terms L[n−1][n−1]·L[n−1][j]: −0 there shows whether the
    // sum starts at +0 (0 + −0 = +0).
    for (const j of [2, 5, 33, 64]) L[(n - 1) * n + j] = -0
    L[(n - 2) * n + 7] = -0
    L[(n - 1) * n + 7] = 0
    const want = new Float64Array(n * n)
    lowerGram(L, want, n)
    expect(
      firstBitDifference(
        inKernel(L, (p) => h.k.lower_gram(p, p, n)),
        want,
      ),
    ).toBe(-1)
  })
})
