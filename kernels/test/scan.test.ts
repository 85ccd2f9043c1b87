import { describe, expect, it, beforeAll } from 'vitest'
import { scanRows, SCAN_DTYPE, type ScanDtype } from '../reference/scan'
import { convertBF16, convertF16 } from '../reference/convert'
import { colAbsmaxSumsq, rowAbsmaxSumsq } from '../reference/channels'
import {
  emptyMoments,
  mergeMoments,
  MOMENTS_LENGTH,
  MOMENT_M2,
  MOMENT_MAX,
  MOMENT_MIN,
  MOMENT_M3,
  MOMENT_M4,
  MOMENT_MEAN,
} from '../reference/stats'
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
  [9, 4099],
]
const DTYPES: readonly ScanDtype[] = ['F32', 'F16', 'BF16']

/** Raw bytes of rows × cols elements of `dtype`, and their f32 values (decoded by the convert twins). */
function data(dtype: ScanDtype, n: number, seed: number, offset = 0): { raw: Uint8Array; f32: Float32Array } {
  const random = rng(seed)
  const values = withSpecials(normalish(random, n, 0.5, offset), random, 13)
  const f32 = new Float32Array(n)
  if (dtype === 'F32') {
    f32.set(values)
    return { raw: new Uint8Array(values.buffer), f32 }
  }
  const halves = new Uint16Array(n)
  if (dtype === 'BF16') {
    const bits = new Uint32Array(values.buffer)
    for (let i = 0; i < n; i++) halves[i] = bits[i] >>> 16
    convertBF16(halves, f32)
  } else {
    // Every f16 pattern is as likely: subnormals, ±0, ±Inf and NaNs included.
    for (let i = 0; i < n; i++) halves[i] = Math.floor(random() * 65536)
    convertF16(halves, f32)
  }
  return { raw: new Uint8Array(halves.buffer), f32 }
}

interface ScanOut {
  moments: Float64Array
  rowAbsmax: Float32Array
  rowSumsq: Float64Array
  colAbsmax: Float32Array
  colSumsq: Float64Array
}

/** Runs scan_rows over `raw` in chunks of `chunkRows` rows (columns accumulating across chunks). */
function wasmScan(dtype: ScanDtype, raw: Uint8Array, rows: number, cols: number, chunkRows = rows): ScanOut {
  h.reset()
  const rowBytes = raw.length / Math.max(rows, 1)
  const colAbs = h.put(new Float32Array(cols))
  const colSq = h.put(new Float64Array(cols))
  const rowAbs = h.alloc(rows * 4)
  const rowSq = h.alloc(rows * 8)
  const out = h.alloc(MOMENTS_LENGTH * 8)
  let moments = emptyMoments()
  for (let r = 0; r < rows; r += chunkRows) {
    const n = Math.min(chunkRows, rows - r)
    const src = h.put(raw.subarray(r * rowBytes, (r + n) * rowBytes), 2) // unaligned on purpose
    h.k.scan_rows(src, SCAN_DTYPE[dtype], n, cols, 1, out, rowAbs + r * 4, rowSq + r * 8, colAbs, colSq)
    moments = mergeMoments(moments, h.f64(out, MOMENTS_LENGTH))
  }
  return {
    moments,
    rowAbsmax: h.f32(rowAbs, rows).slice(),
    rowSumsq: h.f64(rowSq, rows).slice(),
    colAbsmax: h.f32(colAbs, cols).slice(),
    colSumsq: h.f64(colSq, cols).slice(),
  }
}

function twinScan(dtype: ScanDtype, raw: Uint8Array, rows: number, cols: number): ScanOut {
  const o: ScanOut = {
    moments: new Float64Array(MOMENTS_LENGTH),
    rowAbsmax: new Float32Array(rows),
    rowSumsq: new Float64Array(rows),
    colAbsmax: new Float32Array(cols),
    colSumsq: new Float64Array(cols),
  }
  scanRows(raw, dtype, rows, cols, true, o.moments, o.rowAbsmax, o.rowSumsq, o.colAbsmax, o.colSumsq)
  return o
}

function expectSameBits(got: ScanOut, want: ScanOut, what: string): void {
  expect(firstBitDifference(got.moments, want.moments), `${what} moments`).toBe(-1)
  expect(firstBitDifference(got.rowAbsmax, want.rowAbsmax), `${what} row absmax`).toBe(-1)
  expect(firstBitDifference(got.rowSumsq, want.rowSumsq), `${what} row sumsq`).toBe(-1)
  expect(firstBitDifference(got.colAbsmax, want.colAbsmax), `${what} col absmax`).toBe(-1)
  expect(firstBitDifference(got.colSumsq, want.colSumsq), `${what} col sumsq`).toBe(-1)
}

/** Written independently: counts, range and central moments of the finite values, two f64 passes. */
function naiveMoments(x: Float32Array): { count: number; mean: number; m2: number; m3: number; m4: number } {
  let count = 0,
    sum = 0
  for (const v of x)
    if (Number.isFinite(v)) {
      count++
      sum += v
    }
  const mean = count ? sum / count : 0
  let m2 = 0,
    m3 = 0,
    m4 = 0
  for (const v of x) {
    if (!Number.isFinite(v)) continue
    const d = v - mean
    m2 += d * d
    m3 += d * d * d
    m4 += d * d * d * d
  }
  return { count, mean, m2, m3, m4 }
}

function expectClose(actual: number, expected: number, scale: number, what: string): void {
  expect(Math.abs(actual - expected), what).toBeLessThanOrEqual(Math.abs(scale) * 1e-9 + 1e-300)
}

describe('scan_rows', () => {
  it('matches its twin bit for bit on every dtype, odd shapes and special values', () => {
    for (const dtype of DTYPES)
      for (const [rows, cols] of SHAPES) {
        const { raw } = data(dtype, rows * cols, rows * 131 + cols)
        expectSameBits(wasmScan(dtype, raw, rows, cols), twinScan(dtype, raw, rows, cols), `${dtype} ${rows}x${cols}`)
      }
  })

  it('rows of finite values only (its fast path) match the twin, signed zeros and one-signed rows included', () => {
    const [rows, cols] = [12, 37]
    for (const dtype of DTYPES) {
      const random = rng(7)
      const f32 = normalish(random, rows * cols, 0.3)
      for (let c = 0; c < cols; c++) {
        f32[cols + c] = Math.abs(f32[cols + c]) // row 1: ≥ 0 with a -0 (min is -0)
        f32[2 * cols + c] = -Math.abs(f32[2 * cols + c]) // row 2: ≤ 0 with a +0 (max is +0)
        f32[3 * cols + c] = Math.abs(f32[3 * cols + c]) // row 3: ≥ 0 with a +0 only (min is +0)
        f32[4 * cols + c] = -Math.abs(f32[4 * cols + c]) || -0 // row 4: ≤ 0 with a -0 only (max is -0)
      }
      f32[cols + 5] = -0
      f32[2 * cols + 9] = 0
      f32[3 * cols + 30] = 0
      f32[4 * cols + 2] = -0
      f32[5 * cols + 1] = -0 // row 5: mixed signs and both zeros
      f32[5 * cols + 3] = 0
      for (let c = 0; c < cols; c++) f32[6 * cols + c] = 0 // row 6: all +0
      for (let c = 0; c < cols; c++) f32[7 * cols + c] = -0 // row 7: all -0
      let raw: Uint8Array
      if (dtype === 'F32') raw = new Uint8Array(f32.buffer)
      else {
        // Round-trip through the dtype by truncation (bf16) or via the f16 table's nearest pattern (f16).
        const halves = new Uint16Array(rows * cols)
        const bits = new Uint32Array(f32.buffer)
        for (let i = 0; i < halves.length; i++)
          halves[i] =
            dtype === 'BF16'
              ? bits[i] >>> 16
              : ((bits[i] >>> 16) & 0x8000) | (Math.abs(f32[i]) < 1e-4 ? 0 : 0x3c00 | ((bits[i] >>> 13) & 0x3ff))
        raw = new Uint8Array(halves.buffer)
      }
      const got = wasmScan(dtype, raw, rows, cols)
      expectSameBits(got, twinScan(dtype, raw, rows, cols), `${dtype} finite rows`)
      // The signed-zero rows, one at a time through the kernel: min/max keep the sign of the zero.
      const one = (r: number): Float64Array => {
        const bytes = raw.length / rows
        return wasmScan(dtype, raw.subarray(r * bytes, (r + 1) * bytes), 1, cols).moments
      }
      expect(Object.is(one(1)[MOMENT_MIN], -0), `${dtype} row 1 min`).toBe(true)
      expect(Object.is(one(2)[MOMENT_MAX], 0), `${dtype} row 2 max`).toBe(true)
      expect(Object.is(one(3)[MOMENT_MIN], 0), `${dtype} row 3 min`).toBe(true)
      expect(Object.is(one(4)[MOMENT_MAX], -0), `${dtype} row 4 max`).toBe(true)
    }
  })

  it('gives the row and column kernels’ exact results, also when the columns accumulate over chunks', () => {
    for (const dtype of DTYPES) {
      const [rows, cols] = [23, 301]
      const { raw, f32 } = data(dtype, rows * cols, 99)
      const rowAbs = new Float32Array(rows),
        rowSq = new Float64Array(rows),
        colAbs = new Float32Array(cols),
        colSq = new Float64Array(cols)
      rowAbsmaxSumsq(f32, rows, cols, rowAbs, rowSq)
      colAbsmaxSumsq(f32, rows, cols, colAbs, colSq)
      const got = wasmScan(dtype, raw, rows, cols, 5)
      expect(firstBitDifference(got.rowAbsmax, rowAbs), dtype).toBe(-1)
      expect(firstBitDifference(got.rowSumsq, rowSq), dtype).toBe(-1)
      expect(firstBitDifference(got.colAbsmax, colAbs), dtype).toBe(-1)
      expect(firstBitDifference(got.colSumsq, colSq), dtype).toBe(-1)
    }
  })

  it('the twin’s moments agree with a naive two-pass computation over the whole matrix', () => {
    // Finite data, offset from zero so the per-row means differ from the overall mean.
    for (const [rows, cols, offset] of [
      [40, 257, 0],
      [17, 64, 3],
      [1, 1000, -2],
    ]) {
      const random = rng(rows + cols)
      const f32 = normalish(random, rows * cols, 0.7, offset)
      for (let r = 0; r < rows; r++) f32[r * cols] += r * 0.25 // rows with different means
      const out = new Float64Array(MOMENTS_LENGTH)
      scanRows(new Uint8Array(f32.buffer), 'F32', rows, cols, false, out)
      const want = naiveMoments(f32)
      expect(out[0]).toBe(want.count)
      expectClose(out[MOMENT_MEAN], want.mean, 1, 'mean')
      expectClose(out[MOMENT_M2], want.m2, want.m2, 'M2')
      expectClose(out[MOMENT_M3], want.m3, want.m2 * 3, 'M3') // M3 may be near 0: scale by the spread
      expectClose(out[MOMENT_M4], want.m4, want.m4, 'M4')
    }
  })

  it('a constant tensor has central sums of exactly zero', () => {
    const f32 = new Float32Array(6 * 10).fill(1)
    const out = new Float64Array(MOMENTS_LENGTH)
    h.reset()
    const src = h.put(f32)
    const o = h.alloc(MOMENTS_LENGTH * 8)
    h.k.scan_rows(src, SCAN_DTYPE.F32, 6, 10, 0, o, 0, 0, 0, 0)
    out.set(h.f64(o, MOMENTS_LENGTH))
    expect([out[MOMENT_MEAN], out[MOMENT_M2], out[MOMENT_M3], out[MOMENT_M4]]).toEqual([1, 0, 0, 0])
  })

  it('without channels leaves the row and column memory alone; empty shapes give empty moments', () => {
    const { raw } = data('BF16', 4 * 9, 5)
    h.reset()
    const src = h.put(raw)
    const sentinel = h.alloc(64)
    const out = h.alloc(MOMENTS_LENGTH * 8)
    h.k.scan_rows(src, SCAN_DTYPE.BF16, 4, 9, 0, out, sentinel, sentinel, sentinel, sentinel)
    expect(Array.from(h.u8(sentinel, 64)).every((b) => b === 0xcd)).toBe(true)
    const twin = new Float64Array(MOMENTS_LENGTH)
    scanRows(raw, 'BF16', 4, 9, false, twin)
    expect(firstBitDifference(h.f64(out, MOMENTS_LENGTH), twin)).toBe(-1)
    for (const [rows, cols] of [
      [0, 5],
      [3, 0],
    ]) {
      h.k.scan_rows(src, SCAN_DTYPE.BF16, rows, cols, 0, out, 0, 0, 0, 0)
      expect(firstBitDifference(h.f64(out, MOMENTS_LENGTH), emptyMoments())).toBe(-1)
    }
  })
})
