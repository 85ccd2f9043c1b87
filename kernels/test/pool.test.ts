import { describe, expect, it, beforeAll } from 'vitest'
import { mulDivFloor, poolAbsmax } from '../reference/pool'
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

interface Case {
  rows: number
  cols: number
  gridRows: number
  gridCols: number
}
const CASES: readonly Case[] = [
  { rows: 1, cols: 1, gridRows: 1, gridCols: 1 },
  { rows: 7, cols: 5, gridRows: 3, gridCols: 2 },
  { rows: 10, cols: 10, gridRows: 10, gridCols: 10 },
  { rows: 5, cols: 3, gridRows: 8, gridCols: 9 }, // grid finer than the matrix: some cells stay empty
  { rows: 100, cols: 1003, gridRows: 16, gridCols: 64 },
  { rows: 257, cols: 64, gridRows: 7, gridCols: 5 },
]

/** Streams the matrix through the kernel in chunks of `chunkRows`; returns the grid and a canary check. */
function wasmPool(data: Float32Array, c: Case, chunkRows: number): { grid: Float32Array; canaryIntact: boolean } {
  h.reset()
  const cells = c.gridRows * c.gridCols
  const out = h.put(new Float32Array(cells + 4).fill(0).map((v, i) => (i < cells ? 0 : -1)))
  for (let r = 0; r < c.rows; r += chunkRows) {
    const n = Math.min(chunkRows, c.rows - r)
    const ptr = h.put(data.subarray(r * c.cols, (r + n) * c.cols), 4)
    h.k.pool_absmax(ptr, n, c.cols, r, c.rows, c.gridRows, c.gridCols, out)
  }
  return { grid: h.f32(out, cells).slice(), canaryIntact: h.f32(out + cells * 4, 4).every((v) => v === -1) }
}

/** Written independently: cell of each element by floating division (exact at these sizes). */
function naivePool(data: Float32Array, c: Case): Float32Array {
  const grid = new Float32Array(c.gridRows * c.gridCols)
  for (let r = 0; r < c.rows; r++) {
    for (let col = 0; col < c.cols; col++) {
      const x = data[r * c.cols + col]
      if (!Number.isFinite(x)) continue
      const cell = Math.floor((r * c.gridRows) / c.rows) * c.gridCols + Math.floor((col * c.gridCols) / c.cols)
      grid[cell] = Math.max(grid[cell], Math.abs(x))
    }
  }
  return grid
}

describe('pool_absmax', () => {
  it('matches the twin and a naive pooling, whole or streamed in row chunks', () => {
    for (const c of CASES) {
      const random = rng(c.rows * 31 + c.cols)
      const data = withSpecials(normalish(random, c.rows * c.cols, 1), random, 10)
      const expected = naivePool(data, c)
      const ref = new Float32Array(c.gridRows * c.gridCols)
      poolAbsmax(data, c.rows, c.cols, 0, c.rows, c.gridRows, c.gridCols, ref)
      expect(firstBitDifference(ref, expected)).toBe(-1)
      for (const chunk of [c.rows, 1, 3, 13]) {
        const got = wasmPool(data, c, chunk)
        expect(firstBitDifference(got.grid, expected), `${JSON.stringify(c)} chunk ${chunk}`).toBe(-1)
        expect(got.canaryIntact).toBe(true)
      }
    }
  })

  it('skips rows past totalRows and absurd parameters instead of writing outside the grid', () => {
    h.reset()
    const data = h.put(new Float32Array(40).fill(5))
    const out = h.put(Float32Array.from([0, 0, -1, -1]))
    h.k.pool_absmax(data, 10, 4, 1, 2, 2, 1, out) // rows 1..10 of a 2-row matrix: only row 1 counts
    expect(Array.from(h.f32(out, 4))).toEqual([0, 5, -1, -1])
    h.k.pool_absmax(data, 10, 4, 2, 2, 2, 1, out) // entirely past the end
    h.k.pool_absmax(data, 10, 4, -1, 2, 2, 1, out)
    h.k.pool_absmax(data, 10, 4, 0, 2, 0, 1, out)
    h.k.pool_absmax(data, 10, 0, 0, 2, 2, 1, out)
    expect(Array.from(h.f32(out, 4))).toEqual([0, 5, -1, -1])
  })

  it('maps rows with 64-bit products correctly', () => {
    // (rowOffset + r) * gridRows overflows i32 here.
    const totalRows = 2_000_000_000,
      gridRows = 1_000_000_007
    h.reset()
    const data = h.put(Float32Array.from([1, 2, 3]))
    const rowOffset = 1_999_999_998
    const cells = 3
    const out = h.alloc(cells * 4)
    // The grid (a billion cells) cannot exist; with gridCols = 1 only cells firstCell.. are touched, so the
    // output pointer is moved back by firstCell cells. 32-bit address arithmetic wraps, so the kernel's
    // writes land in the small buffer at `out` exactly when it computes the right cell indices.
    const firstCell = mulDivFloor(rowOffset, gridRows, totalRows)
    for (let r = 0; r < 2; r++) {
      const cell = mulDivFloor(rowOffset + r, gridRows, totalRows)
      expect(cell).toBe(Number((BigInt(rowOffset + r) * BigInt(gridRows)) / BigInt(totalRows)))
      expect(cell - firstCell).toBeLessThan(cells)
    }
    new Float32Array(h.memory.buffer, out, cells).fill(0)
    h.k.pool_absmax(data, 2, 1, rowOffset, totalRows, gridRows, 1, out - firstCell * 4)
    const got = Array.from(h.f32(out, cells))
    const expected = [0, 0, 0]
    expected[mulDivFloor(rowOffset, gridRows, totalRows) - firstCell] = 1
    expected[mulDivFloor(rowOffset + 1, gridRows, totalRows) - firstCell] = 2
    expect(got).toEqual(expected)
  })
})

describe('mulDivFloor', () => {
  it('is exact on both sides of 2^53', () => {
    expect(mulDivFloor(7, 3, 2)).toBe(10)
    expect(mulDivFloor(0, 5, 3)).toBe(0)
    const a = 2 ** 31 - 1,
      b = 2 ** 31 - 3,
      c = 12345
    expect(mulDivFloor(a, b, c)).toBe(Number((BigInt(a) * BigInt(b)) / BigInt(c)))
    const random = rng(8)
    for (let i = 0; i < 1000; i++) {
      const x = Math.floor(random() * 2 ** 26),
        y = Math.floor(random() * 2 ** 26),
        z = 1 + Math.floor(random() * 2 ** 20)
      expect(mulDivFloor(x, y, z)).toBe(Number((BigInt(x) * BigInt(y)) / BigInt(z)))
    }
  })
})
