// The f64 linear-algebra kernels (GPTQ/SparseGPT) against their twins, bit for bit, and the twins
// against independent checks (L·Lᵀ = A, L·L⁻¹ = I, a naive Hessian). The engine's
// wrappers on a worker pool are tested beside them (compress/linalg/kernels.test.ts,
// calibration/kernel-hessian.test.ts).

import { beforeAll, describe, expect, it } from 'vitest'
import { KernelArgumentError } from '../reference/errors'
import { HESSIAN_CHUNK_TOKENS, hessianAccumulate } from '../reference/hessian'
import { choleskyLower, gptqBlockRows, invertLower } from '../reference/linalg'
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
    for (const M of [1, 5, 300, 513]) {
      // 300 and 513 tokens cross the 256-token chunks
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

  it('twin: per-element f32 sums over chunks of tokens added in f64, only on the upper triangle of its rows', () => {
    expect(h.k.hessian_chunk_tokens()).toBe(HESSIAN_CHUNK_TOKENS)
    const M = 600, // two whole chunks and a part
      K = 19,
      i0 = 5,
      i1 = 13
    const x = normalish(rng(3), M * K)
    const H = new Float64Array(K * K).fill(7)
    hessianAccumulate(x, H, M, K, i0, i1)
    for (let i = 0; i < K; i++) {
      for (let j = 0; j < K; j++) {
        let want = 7,
          exact = 7
        if (i >= i0 && i < i1 && j >= i) {
          for (let t0 = 0; t0 < M; t0 += HESSIAN_CHUNK_TOKENS) {
            let chunk = 0
            for (let t = t0; t < Math.min(M, t0 + HESSIAN_CHUNK_TOKENS); t++) {
              chunk = Math.fround(chunk + Math.fround(x[t * K + i] * x[t * K + j]))
              exact += x[t * K + i] * x[t * K + j]
            }
            want += chunk
          }
        }
        expect(H[i * K + j]).toBe(want)
        // Within f32 rounding of the exact sum, relative to the terms' scale (M · E[x²] ≈ M / 3 here).
        expect(Math.abs(H[i * K + j] - exact)).toBeLessThan(1e-5 * M)
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

// The step entry points (for a host that splits rows across workers): any split of the rows, in any
// order of the ranges within a step, gives the whole kernel's bits, which are the twin's.
describe('the split steps: cholesky_panel/trailing/finish, invert_lower_panel/below', () => {
  /** Uneven ranges covering [start, end): cut at the given fractions (boundaries not multiples of 4). */
  function cuts(start: number, end: number, fractions: number[]): [number, number][] {
    const bounds = [start, ...fractions.map((f) => start + Math.floor((end - start) * f)), end]
    const ranges: [number, number][] = []
    for (let i = 0; i + 1 < bounds.length; i++) if (bounds[i] < bounds[i + 1]) ranges.push([bounds[i], bounds[i + 1]])
    return ranges.reverse() // the last rows first: the ranges of one step are independent
  }
  const SPLIT_SIZES = [1, 3, 64, 65, 261, 300]

  it.each(SPLIT_SIZES)('Cholesky in steps equals the twin bit for bit (n = %i)', (n) => {
    const A = spd(n, 40 + n)
    const want = A.slice()
    expect(choleskyLower(want, n)).toBe(0)
    const P = h.k.linalg_panel_rows()
    const got = inKernel(A, (p) => {
      for (let p0 = 0; p0 < n; p0 += P) {
        expect(h.k.cholesky_panel(p, n, p0)).toBe(0)
        for (const [r0, r1] of cuts(Math.min(n, p0 + P), n, [0.13, 0.5, 0.77])) h.k.cholesky_trailing(p, n, p0, r0, r1)
      }
      h.k.cholesky_finish(p, n)
    })
    expect(firstBitDifference(got, want)).toBe(-1)
  })

  it('cholesky_panel reports the failing pivot of its own panel', () => {
    const n = 150
    const A = spd(n, 3)
    A[100 * n + 100] = -1
    const P = h.k.linalg_panel_rows()
    let failed = 0
    inKernel(A, (p) => {
      for (let p0 = 0; p0 < n && failed === 0; p0 += P) {
        failed = h.k.cholesky_panel(p, n, p0)
        if (failed === 0) h.k.cholesky_trailing(p, n, p0, p0 + P, n)
      }
    })
    expect(failed).toBe(101)
  })

  it.each(SPLIT_SIZES)('the triangular inverse in steps equals the twin bit for bit (n = %i)', (n) => {
    const L = lowerTriangular(n, 500 + n)
    const want = L.slice()
    invertLower(want, n)
    const P = h.k.linalg_panel_rows()
    const got = inKernel(L, (p) => {
      for (let p0 = 0; p0 < n; p0 += P) {
        h.k.invert_lower_panel(p, n, p0)
        for (const [r0, r1] of cuts(Math.min(n, p0 + P), n, [0.21, 0.6])) h.k.invert_lower_below(p, n, p0, r0, r1)
      }
    })
    expect(firstBitDifference(got, want)).toBe(-1)
  })

  it('ignores ranges outside their step instead of writing out of range', () => {
    const n = 100
    const A = spd(n, 2)
    const got = inKernel(A, (p) => {
      h.k.cholesky_trailing(p, n, 0, 10, 50) // starts inside the panel
      h.k.cholesky_trailing(p, n, 0, 64, 101) // ends past n
      h.k.invert_lower_below(p, n, 0, 64, 200)
      h.k.cholesky_panel(p, n, n) // no such panel
    })
    expect(firstBitDifference(got, A)).toBe(-1)
  })
})

describe('gptq_block_rows', () => {
  it.each([
    [1, 1, 0, 1, 1, false],
    [7, 37, 5, 13, 16, false],
    [33, 300, 128, 128, 128, false],
    [20, 130, 128, 2, 128, false],
    [7, 37, 5, 13, 16, true],
    [33, 300, 128, 128, 128, true],
  ])(
    'equals the twin bit for bit, on row sub-ranges and column pieces (rows %i, cols %i, c0 %i, count %i, B %i, zero mask %s)',
    (rows, cols, c0, count, B, masked) => {
      const r = rng(rows * 31 + cols)
      const W = Float32Array.from(withSpecials(normalish(r, rows * cols, 2), r, 7))
      const U = Float32Array.from(normalish(r, B * B, 0.3))
      for (let i = 0; i < B; i++) U[i * B + i] = 0.5 + r() // the diagonal of a Cholesky factor: positive
      const grids = new Float32Array(rows * 2)
      for (let q = 0; q < rows; q++) {
        grids[2 * q] = Math.fround(0.05 + r() * 0.5)
        grids[2 * q + 1] = Math.floor(r() * 16)
      }
      grids[0] = 0 // a zero scale: w / 0 is ±∞ or NaN in both
      const maxq = 15
      // About a third of the weights marked as pruned, when masked.
      const mask = masked ? Uint8Array.from({ length: rows * B }, () => (r() < 0.3 ? 1 : 0)) : null
      const wantW = W.slice(),
        wantErr = new Float32Array(rows * B)
      const split = Math.floor(rows / 3),
        mid = Math.floor(count / 2)
      gptqBlockRows(wantW, cols, c0, count, 0, count, U, B, wantErr, grids, maxq, 0, rows, mask)
      h.reset()
      const wp = h.put(W),
        up = h.put(U),
        ep = h.put(new Float32Array(rows * B)),
        gp = h.put(grids),
        mp = mask ? h.put(mask) : 0
      // Rows in two ranges (the later first), each block in two pieces of columns, in order.
      for (const [r0, r1] of [
        [split, rows],
        [0, split],
      ]) {
        h.k.gptq_block_rows(wp, cols, c0, count, 0, mid, up, B, ep, gp, maxq, r0, r1, mp)
        h.k.gptq_block_rows(wp, cols, c0, count, mid, count, up, B, ep, gp, maxq, r0, r1, mp)
      }
      expect(firstBitDifference(h.f32(wp, rows * cols), wantW)).toBe(-1)
      expect(firstBitDifference(h.f32(ep, rows * B), wantErr)).toBe(-1)
      if (mask) {
        // A marked weight is quantized as 0: on a grid whose zero code is in range, it stays exactly 0.
        let checked = 0
        for (let q = 1; q < rows; q++)
          for (let i = 0; i < count; i++)
            if (mask[q * B + i] && grids[2 * q + 1] <= maxq) {
              expect(wantW[q * cols + c0 + i]).toBe(0)
              checked++
            }
        expect(checked).toBeGreaterThan(0)
      }
    },
  )

  it('twin: the first column is plain rounding on the grid, and the error feeds the next column', () => {
    const W = Float32Array.from([0.26, 1, -0.74, 2])
    const U = Float32Array.from([2, 0.5, 0, 4])
    const grids = Float32Array.from([0.5, 8, 0.25, 0])
    const err = new Float32Array(4)
    gptqBlockRows(W, 2, 0, 2, 0, 2, U, 2, err, grids, 15, 0, 2)
    // Row 0: 0.26/0.5 = 0.52 → 1 + 8 = 9 → 0.5·(9 − 8) = 0.5; e = (0.26 − 0.5)/2; next w = 1 − e·0.5.
    expect(W[0]).toBe(0.5)
    expect(err[0]).toBe(Math.fround(Math.fround(Math.fround(0.26) - 0.5) / 2))
    const next = Math.fround(1 - Math.fround(err[0] * 0.5))
    expect(W[1]).toBe(Math.fround(0.5 * (Math.min(15, Math.round(next / 0.5) + 8) - 8)))
    // Row 1: −0.74 clamps at code 0 → 0.
    expect(W[2]).toBe(0)
  })
})
