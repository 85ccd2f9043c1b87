// The f64 linear-algebra kernels (GPTQ/SparseGPT) against their twins, bit for bit, and the twins
// against independent checks (L·Lᵀ = A, L·L⁻¹ = I, a naive Gram product, a naive Hessian); then the
// engine wrappers on a real worker pool against cholesky.ts. Timings are printed, never asserted.

import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { WorkerPool } from '../../src-main/engine/pool/worker-pool'
import { inverseCholeskyUpper } from '../../src-main/engine/compress/linalg/cholesky'
import {
  KernelHessian, accumulateHessianWasm, inverseCholeskyUpperWasm, splitTriangleRows,
} from '../../src-main/engine/compress/linalg/kernels'
import { WhittleError } from '../../src-main/engine/errors'
import { choleskyLower, hessianAccumulate, invertLower, lowerGram } from '../reference/linalg'
import { firstBitDifference, loadKernels, normalish, rng, withSpecials, type KernelHarness } from './support'

// 1 … 3 have no full 4×4 tile; 17 and 129 leave edges; 261 and 300 cross the 64-row panels and the
// 256-column blocks.
const SIZES = [1, 2, 3, 17, 64, 129, 261]

let h: KernelHarness
beforeAll(async () => {
  h = await loadKernels()
})

/** Symmetric positive definite: B·Bᵀ/n + I for a random B, so the condition number stays modest. */
function spd(n: number, seed: number): Float64Array {
  const B = normalish(rng(seed), n * n)
  const A = new Float64Array(n * n)
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = 0
      for (let k = 0; k < n; k++) s += B[i * n + k] * B[j * n + k]
      A[i * n + j] = A[j * n + i] = s / n + (i === j ? 1 : 0)
    }
  }
  return A
}

/** Lower-triangular with a diagonal in [1, 2), so its inverse is well conditioned; upper part zero. */
function lowerTriangular(n: number, seed: number): Float64Array {
  const r = rng(seed)
  const L = new Float64Array(n * n)
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < i; j++) L[i * n + j] = (r() - 0.5) / Math.sqrt(n)
    L[i * n + i] = 1 + r()
  }
  return L
}

/** C = A·B for n×n row-major matrices, plain triple loop. */
function multiply(A: Float64Array, B: Float64Array, n: number): Float64Array {
  const C = new Float64Array(n * n)
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < n; k++) {
      const a = A[i * n + k]
      if (a === 0) continue
      for (let j = 0; j < n; j++) C[i * n + j] += a * B[k * n + j]
    }
  }
  return C
}

function transpose(A: Float64Array, n: number): Float64Array {
  const T = new Float64Array(n * n)
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) T[j * n + i] = A[i * n + j]
  return T
}

function maxAbs(A: Float64Array): number {
  let m = 0
  for (const v of A) m = Math.max(m, Math.abs(v))
  return m
}

/** max |A − B| / max |B|. */
function relativeError(A: Float64Array, B: Float64Array): number {
  let m = 0
  for (let i = 0; i < A.length; i++) m = Math.max(m, Math.abs(A[i] - B[i]))
  return m / maxAbs(B)
}

function identityError(A: Float64Array, n: number): number {
  let m = 0
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) m = Math.max(m, Math.abs(A[i * n + j] - (i === j ? 1 : 0)))
  return m
}

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
    for (const M of [1, 5, 300]) { // 300 tokens cross the kernel's 256-token blocks
      const x = withSpecials(normalish(r, M * K, 2), r, 50)
      const start = normalish(r, K * K).map((v) => v) // a non-zero H: the kernel accumulates
      const H0 = Float64Array.from(start)
      const ranges: [number, number][] = [[0, K], [Math.floor(K / 3), K - Math.floor(K / 5)], [K - 1, K]]
      for (const [i0, i1] of ranges) {
        const want = H0.slice()
        hessianAccumulate(x, want, M, K, i0, i1)
        h.reset()
        const xp = h.put(x), hp = h.put(H0)
        h.k.hessian_accumulate(xp, hp, M, K, i0, i1)
        expect(firstBitDifference(h.f64(hp, K * K), want)).toBe(-1)
      }
    }
  })

  it('twin: equals a naive per-element sum over tokens, and touches only the upper triangle of its rows', () => {
    const M = 37, K = 19, i0 = 5, i1 = 13
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
    const xp = h.put(new Float32Array([1, 2, 3, 4])), hp = h.put(new Float64Array(4).fill(5))
    for (const [M, K, i0, i1] of [[0, 2, 0, 2], [2, 0, 0, 0], [2, 2, -1, 2], [2, 2, 0, 3], [2, 2, 2, 1]]) {
      h.k.hessian_accumulate(xp, hp, M, K, i0, i1)
    }
    expect(Array.from(h.f64(hp, 4))).toEqual([5, 5, 5, 5])
    expect(() => hessianAccumulate(new Float32Array(4), new Float64Array(4), 2, 2, 0, 3)).toThrow(WhittleError)
  })
})

describe('cholesky_lower', () => {
  it.each(SIZES)('equals the twin bit for bit and L·Lᵀ = A (n = %i)', (n) => {
    const A = spd(n, n)
    const want = A.slice()
    expect(choleskyLower(want, n)).toBe(0)
    let status = -1
    const got = inKernel(A, (p) => { status = h.k.cholesky_lower(p, n) })
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
    expect(firstBitDifference(inKernel(garbled, (p) => h.k.cholesky_lower(p, n)), clean)).toBe(-1)
  })

  it.each([[1, 0], [17, 9], [129, 100], [261, 200]])('reports the column of the first non-positive pivot (n = %i, column %i)', (n, bad) => {
    // A = L·Lᵀ with L[bad][bad] replaced so that the pivot at `bad` becomes −1 (and later ones do not matter).
    const L = lowerTriangular(n, n + bad)
    const A = multiply(L, transpose(L, n), n)
    A[bad * n + bad] -= L[bad * n + bad] ** 2 + 1
    expect(choleskyLower(A.slice(), n)).toBe(bad + 1)
    let status = -1
    inKernel(A, (p) => { status = h.k.cholesky_lower(p, n) })
    expect(status).toBe(bad + 1)
  })

  it('fails on a NaN pivot and on a zero matrix, and does nothing for n ≤ 0', () => {
    const A = spd(9, 2)
    A[4 * 9 + 4] = NaN
    expect(choleskyLower(A.slice(), 9)).toBe(5)
    let status = -1
    inKernel(A, (p) => { status = h.k.cholesky_lower(p, 9) })
    expect(status).toBe(5)
    inKernel(new Float64Array(16), (p) => { status = h.k.cholesky_lower(p, 4) })
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
    for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) {
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
      const i = 1 + Math.floor(r() * (n - 1)), j = Math.floor(r() * i)
      L[i * n + j] = specials[q % specials.length]
    }
    L[30 * n + 30] = -0 // a −0 pivot gives −Infinity, not a trap
    // Zeros right below the diagonal: X[i + 1][i] = (0 − L[i + 1][i]·X[i][i]) / L[i + 1][i + 1] is then a
    // single term, whose sign shows whether the sum really starts at +0.
    for (const i of [3, 4, 40, 41, 60]) L[(i + 1) * n + i] = i % 2 ? -0 : 0
    const want = L.slice()
    invertLower(want, n)
    expect(firstBitDifference(inKernel(L, (p) => h.k.invert_lower(p, n)), want)).toBe(-1)
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
    const lp = h.put(input), op = h.put(new Float64Array(n * n).fill(99))
    h.k.lower_gram(lp, op, n)
    expect(firstBitDifference(h.f64(op, n * n), want)).toBe(-1)
    expect(firstBitDifference(h.f64(lp, n * n), input)).toBe(-1) // the input is left alone
    expect(firstBitDifference(inKernel(input, (p) => h.k.lower_gram(p, p, n)), want)).toBe(-1)
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
      const i = (q * 37) % n, j = (q * 11) % (i + 1)
      L[i * n + j] = specials[q % specials.length]
    }
    // The last row's Gram entries are single terms L[n−1][n−1]·L[n−1][j]: −0 there shows whether the
    // sum starts at +0 (0 + −0 = +0).
    for (const j of [2, 5, 33, 64]) L[(n - 1) * n + j] = -0
    L[(n - 2) * n + 7] = -0
    L[(n - 1) * n + 7] = 0
    const want = new Float64Array(n * n)
    lowerGram(L, want, n)
    expect(firstBitDifference(inKernel(L, (p) => h.k.lower_gram(p, p, n)), want)).toBe(-1)
  })
})

describe('engine wrappers on a worker pool', () => {
  let pool: WorkerPool
  beforeAll(async () => {
    pool = await WorkerPool.create({ threads: 2 })
  })
  afterAll(async () => {
    await pool.close()
  })

  it.each([1, 3, 64, 129, 261])('inverseCholeskyUpperWasm matches cholesky.ts inverseCholeskyUpper and UᵀU·H = I (n = %i)', (n) => {
    const H = spd(n, 300 + n)
    const before = pool.arena.liveBytes
    const U = inverseCholeskyUpperWasm(pool, H, n)
    expect(pool.arena.liveBytes).toBe(before)
    const want = inverseCholeskyUpper(H, n)
    expect(relativeError(U, want)).toBeLessThan(1e-9)
    for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) expect(U[i * n + j]).toBe(0)
    expect(identityError(multiply(multiply(transpose(U, n), U, n), H, n), n)).toBeLessThan(1e-9)
    expect(H).toEqual(spd(n, 300 + n)) // H itself is not modified
  })

  it('inverseCholeskyUpperWasm: a WhittleError naming the column for a matrix that is not positive definite', () => {
    const n = 40
    const H = spd(n, 8)
    H[17 * n + 17] = -1
    const before = pool.arena.liveBytes
    expect(() => inverseCholeskyUpperWasm(pool, H, n)).toThrow(/not positive definite at column 17; raise the damping/)
    expect(() => inverseCholeskyUpperWasm(pool, H, n)).toThrow(WhittleError)
    expect(pool.arena.liveBytes).toBe(before) // released on failure too
    expect(() => inverseCholeskyUpperWasm(pool, H, 41)).toThrow(WhittleError)
    expect(() => inverseCholeskyUpperWasm(pool, H, 0)).toThrow(WhittleError)
    expect(() => inverseCholeskyUpperWasm(pool, H, 1e6)).toThrow(WhittleError)
  })

  it('splitTriangleRows covers [0, K) in ranges of about equal area on multiples of 4', () => {
    for (const [K, parts] of [[1000, 2], [2048, 8], [130, 3], [5, 4], [4096, 1]]) {
      const b = splitTriangleRows(K, parts)
      expect(b[0]).toBe(0)
      expect(b[b.length - 1]).toBe(K)
      for (let p = 1; p < b.length; p++) expect(b[p]).toBeGreaterThan(b[p - 1])
      for (let p = 1; p < b.length - 1; p++) expect(b[p] % 4).toBe(0)
      if (K >= 1000) {
        const area = (i0: number, i1: number) => { let s = 0; for (let i = i0; i < i1; i++) s += K - i; return s }
        const areas = b.slice(1).map((end, p) => area(b[p], end))
        expect(Math.max(...areas) / Math.min(...areas)).toBeLessThan(1.05)
      }
    }
  })

  it('KernelHessian over several batches equals the twin (and capture order) bit for bit, mirrored', async () => {
    const K = 261, r = rng(21)
    const batches = [70, 1, 300].map((M) => ({ M, x: normalish(r, M * K) }))
    const acc = new KernelHessian(pool, K)
    const want = new Float64Array(K * K)
    try {
      // Adds queued without awaiting still land in call order.
      await Promise.all(batches.map((b) => acc.add(b.x, b.M)))
      for (const b of batches) hessianAccumulate(b.x, want, b.M, K)
      expect(acc.tokens).toBe(371)
      const full = acc.toArray()
      for (let i = 0; i < K; i++) for (let j = i; j < K; j++) {
        expect(full[i * K + j]).toBe(want[i * K + j])
        expect(full[j * K + i]).toBe(want[i * K + j])
      }
      await expect(acc.add(new Float32Array(5), 1)).rejects.toThrow(WhittleError)
    } finally {
      acc.free()
    }
    expect(() => acc.toArray()).toThrow(WhittleError)
    acc.free()
  })

  it('accumulateHessianWasm adds into a JS Hessian like the twin, splitting rows over the workers', async () => {
    const M = 50, K = 200
    const x = normalish(rng(5), M * K)
    const H = normalish(rng(6), K * K).reduce((a, v, i) => { a[i] = v; return a }, new Float64Array(K * K))
    const want = H.slice()
    hessianAccumulate(x, want, M, K)
    const before = pool.arena.liveBytes
    await accumulateHessianWasm(pool, x, M, K, H)
    expect(pool.arena.liveBytes).toBe(before)
    expect(firstBitDifference(H, want)).toBe(-1)
  })

  it('prints timings (not asserted): inverse Cholesky n = 1024, 2048 against cholesky.ts; Hessian GFLOP/s', async () => {
    const lines: string[] = []
    for (const n of [1024, 2048]) {
      const H = spd(Math.min(n, 256), 1) // a cheap SPD seed, then tiled into a diagonally dominant n×n
      const big = new Float64Array(n * n)
      for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) big[i * n + j] = H[(i % 256) * 256 + (j % 256)] * 0.01
      for (let i = 0; i < n; i++) big[i * n + i] += n
      let t = performance.now()
      const U = inverseCholeskyUpperWasm(pool, big, n)
      const wasmMs = performance.now() - t
      let line = `inverseCholeskyUpper n=${n}: wasm ${wasmMs.toFixed(0)} ms`
      if (n <= 1024 || process.env.WHITTLE_LINALG_BENCH) {
        t = performance.now()
        const want = inverseCholeskyUpper(big, n)
        line += `, cholesky.ts ${(performance.now() - t).toFixed(0)} ms, max rel diff ${relativeError(U, want).toExponential(1)}`
      } else {
        line += ' (cholesky.ts skipped; set WHITTLE_LINALG_BENCH=1)'
      }
      lines.push(line)
    }
    const M = 4096, K = 2048
    const x = normalish(rng(1), M * K)
    const acc = new KernelHessian(pool, K)
    try {
      const t = performance.now()
      await acc.add(x, M)
      const s = (performance.now() - t) / 1000
      const flops = M * K * (K + 1) // one multiply and one add per upper-triangle entry and token
      lines.push(`hessian_accumulate M=${M} K=${K} on ${pool.threads} workers: ${(s * 1000).toFixed(0)} ms, ${(flops / s / 1e9).toFixed(2)} GFLOP/s`)
    } finally {
      acc.free()
    }
    console.log(lines.join('\n'))
  }, 120_000)
})
