import { describe, expect, it, beforeAll } from 'vitest'
import { colAbsmaxSumsq, colInputStats, rowAbsmaxSumsq } from '../reference/channels'
import {
  firstBitDifference,
  loadKernels,
  normalish,
  rng,
  withSpecials,
  type KernelHarness,
} from '../testing/kernel-harness'

let h: KernelHarness
beforeAll(async () => {
  h = await loadKernels()
})

const SHAPES: readonly [number, number][] = [
  [1, 1],
  [1, 3],
  [3, 1],
  [2, 4],
  [5, 17],
  [7, 64],
  [33, 1000],
  [64, 4099],
]

function matrix(rows: number, cols: number, seed: number): Float32Array {
  const random = rng(seed)
  return withSpecials(normalish(random, rows * cols, 0.5), random, 13)
}

function wasmRows(data: Float32Array, rows: number, cols: number): { absmax: Float32Array; sumsq: Float64Array } {
  h.reset()
  const ptr = h.put(data, 4)
  const absmax = h.alloc(rows * 4)
  const sumsq = h.alloc(rows * 8)
  h.k.row_absmax_sumsq(ptr, rows, cols, absmax, sumsq)
  return { absmax: h.f32(absmax, rows).slice(), sumsq: h.f64(sumsq, rows).slice() }
}

/** Streams the matrix through the column kernel in row chunks, starting from zeros. */
function wasmCols(
  data: Float32Array,
  rows: number,
  cols: number,
  chunkRows: number,
): { absmax: Float32Array; sumsq: Float64Array } {
  h.reset()
  const absmax = h.put(new Float32Array(cols))
  const sumsq = h.put(new Float64Array(cols))
  for (let r = 0; r < rows; r += chunkRows) {
    const n = Math.min(chunkRows, rows - r)
    const ptr = h.put(data.subarray(r * cols, (r + n) * cols), 8)
    h.k.col_absmax_sumsq(ptr, n, cols, absmax, sumsq)
  }
  return { absmax: h.f32(absmax, cols).slice(), sumsq: h.f64(sumsq, cols).slice() }
}

/** Written independently: per row/column, finite values only, sequential f64 sums. */
function naive(data: Float32Array, rows: number, cols: number, axis: 'row' | 'col') {
  const count = axis === 'row' ? rows : cols
  const absmax = new Float64Array(count)
  const sumsq = new Float64Array(count)
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const x = data[r * cols + c]
      if (!Number.isFinite(x)) continue
      const i = axis === 'row' ? r : c
      absmax[i] = Math.max(absmax[i], Math.abs(x))
      sumsq[i] += x * x
    }
  }
  return { absmax, sumsq }
}

function expectSumsClose(actual: Float64Array, expected: Float64Array): void {
  for (let i = 0; i < expected.length; i++) {
    expect(Math.abs(actual[i] - expected[i])).toBeLessThanOrEqual(Math.abs(expected[i]) * 1e-12)
  }
}

describe('row_absmax_sumsq', () => {
  it('matches the twin bit for bit and a naive computation closely', () => {
    for (const [rows, cols] of SHAPES) {
      const data = matrix(rows, cols, rows * 1000 + cols)
      const got = wasmRows(data, rows, cols)
      const refAbs = new Float32Array(rows),
        refSq = new Float64Array(rows)
      rowAbsmaxSumsq(data, rows, cols, refAbs, refSq)
      expect(firstBitDifference(got.absmax, refAbs), `${rows}x${cols}`).toBe(-1)
      expect(firstBitDifference(got.sumsq, refSq), `${rows}x${cols}`).toBe(-1)
      const n = naive(data, rows, cols, 'row')
      expect(Array.from(got.absmax)).toEqual(Array.from(n.absmax)) // max does not depend on order
      expectSumsClose(got.sumsq, n.sumsq)
    }
  })

  it('rows of only non-finite values give 0', () => {
    const got = wasmRows(Float32Array.from([NaN, Infinity, -Infinity, NaN, NaN, 2]), 2, 3)
    expect(Array.from(got.absmax)).toEqual([0, 2])
    expect(Array.from(got.sumsq)).toEqual([0, 4])
  })
})

describe('col_absmax_sumsq', () => {
  it('accumulates over row chunks: bit-exact with the twin and the whole, close to naive', () => {
    for (const [rows, cols] of SHAPES) {
      const data = matrix(rows, cols, rows * 7 + cols)
      const refAbs = new Float32Array(cols),
        refSq = new Float64Array(cols)
      colAbsmaxSumsq(data, rows, cols, refAbs, refSq)
      const whole = wasmCols(data, rows, cols, rows)
      expect(firstBitDifference(whole.absmax, refAbs), `${rows}x${cols}`).toBe(-1)
      expect(firstBitDifference(whole.sumsq, refSq), `${rows}x${cols}`).toBe(-1)
      // Rows are added in order either way, so chunking changes nothing.
      const chunked = wasmCols(data, rows, cols, 3)
      expect(firstBitDifference(chunked.absmax, refAbs)).toBe(-1)
      expect(firstBitDifference(chunked.sumsq, refSq)).toBe(-1)
      const n = naive(data, rows, cols, 'col')
      expect(Array.from(whole.absmax)).toEqual(Array.from(n.absmax))
      expectSumsClose(whole.sumsq, n.sumsq)
    }
  })

  it('keeps larger existing values and adds to existing sums', () => {
    h.reset()
    const absmax = h.put(Float32Array.from([10, 0, 0, 0, 0]))
    const sumsq = h.put(Float64Array.from([1, 1, 1, 1, 1]))
    h.k.col_absmax_sumsq(h.put(Float32Array.from([-3, 2, NaN, -Infinity, 0.5])), 1, 5, absmax, sumsq)
    expect(Array.from(h.f32(absmax, 5))).toEqual([10, 2, 0, 0, 0.5])
    expect(Array.from(h.f64(sumsq, 5))).toEqual([10, 5, 1, 1, 1.25])
  })

  it('does nothing for empty shapes', () => {
    h.reset()
    const out = h.alloc(16)
    h.k.col_absmax_sumsq(h.alloc(16), 0, 4, out, out)
    h.k.row_absmax_sumsq(h.alloc(16), 4, 0, out, out)
    expect(h.u32(out, 4).every((w) => w === 0xcdcdcdcd)).toBe(true)
  })
})

describe('col_input_stats', () => {
  /** The kernel over `data` in chunks of `chunk` rows, starting from `start` (absmax, Σ|x|, Σx² per column). */
  function wasmStats(data: Float32Array, rows: number, cols: number, chunk: number, start: number[]) {
    h.reset()
    const x = h.alloc(Math.max(1, chunk * cols) * 4)
    const absmax = h.put(Float32Array.from({ length: cols }, () => start[0]))
    const sumAbs = h.put(Float64Array.from({ length: cols }, () => start[1]))
    const sumSq = h.put(Float64Array.from({ length: cols }, () => start[2]))
    for (let r0 = 0; r0 < rows; r0 += chunk) {
      const n = Math.min(chunk, rows - r0)
      h.f32(x, n * cols).set(data.subarray(r0 * cols, (r0 + n) * cols))
      h.k.col_input_stats(x, n, cols, absmax, sumAbs, sumSq)
    }
    return {
      absmax: h.f32(absmax, cols).slice(),
      sumAbs: h.f64(sumAbs, cols).slice(),
      sumSq: h.f64(sumSq, cols).slice(),
    }
  }

  it('is bit-exact with its twin, whole or in row chunks, specials included', () => {
    for (const [rows, cols] of SHAPES) {
      const data = matrix(rows, cols, rows * 11 + cols)
      const start = [0.25, 1.5, 3]
      const ref = {
        absmax: new Float32Array(cols).fill(start[0]),
        sumAbs: new Float64Array(cols).fill(start[1]),
        sumSq: new Float64Array(cols).fill(start[2]),
      }
      colInputStats(data, rows, cols, ref.absmax, ref.sumAbs, ref.sumSq)
      for (const chunk of [rows, 3]) {
        const got = wasmStats(data, rows, cols, chunk, start)
        expect(firstBitDifference(got.absmax, ref.absmax), `${rows}x${cols} absmax`).toBe(-1)
        expect(firstBitDifference(got.sumAbs, ref.sumAbs), `${rows}x${cols} sum|x|`).toBe(-1)
        expect(firstBitDifference(got.sumSq, ref.sumSq), `${rows}x${cols} sum x2`).toBe(-1)
      }
    }
  })

  it('lets non-finite values into the sums but never NaN into absmax', () => {
    // 8 columns: the SIMD lanes and the scalar tail both see the specials.
    const row = Float32Array.from([-3, NaN, Infinity, 0.5, -Infinity, 2, NaN, -0])
    const got = wasmStats(row, 1, 8, 1, [1, 0, 0])
    expect(Array.from(got.absmax)).toEqual([3, 1, Infinity, 1, Infinity, 2, 1, 1])
    expect(Array.from(got.sumAbs)).toEqual([3, NaN, Infinity, 0.5, Infinity, 2, NaN, 0])
    expect(Array.from(got.sumSq)).toEqual([9, NaN, Infinity, 0.25, Infinity, 4, NaN, 0])
    const tail = wasmStats(row.subarray(0, 7), 1, 7, 1, [1, 0, 0])
    expect(Array.from(tail.absmax)).toEqual([3, 1, Infinity, 1, Infinity, 2, 1])
  })
})
