import { describe, expect, it, beforeAll } from 'vitest'
import { histogram } from '../reference/histogram'
import { loadKernels, normalish, ODD_SIZES, rng, withSpecials, type KernelHarness } from '../testing/kernel-harness'

let h: KernelHarness
beforeAll(async () => {
  h = await loadKernels()
})

/** Runs the kernel on `data`, accumulating onto `initial` counts. */
function wasmHistogram(data: Float32Array, lo: number, hi: number, bins: number, initial?: Uint32Array): Uint32Array {
  h.reset()
  const ptr = h.put(data, 4)
  const counts = h.put(initial ?? new Uint32Array(Math.max(bins, 0) + 2))
  h.k.histogram(ptr, data.length, lo, hi, bins, counts)
  return h.u32(counts, Math.max(bins, 0) + 2).slice()
}

function refHistogram(data: Float32Array, lo: number, hi: number, bins: number): Uint32Array {
  const counts = new Uint32Array(bins + 2)
  histogram(data, lo, hi, bins, counts)
  return counts
}

describe('histogram', () => {
  it('matches the twin exactly on random data with special values and odd sizes', () => {
    const random = rng(21)
    for (const n of [...ODD_SIZES, 65_537]) {
      const data = withSpecials(normalish(random, n, 1), random, 9)
      for (const [lo, hi, bins] of [
        [-1, 1, 64],
        [-2.5, 0.3, 7],
        [0, 1e-3, 1],
        [-4, 4, 1000],
        [0.1, 0.1, 3],
        [1, -1, 5],
      ]) {
        expect(Array.from(wasmHistogram(data, lo, hi, bins)), `n=${n} [${lo}, ${hi}] x${bins}`).toEqual(
          Array.from(refHistogram(data, lo, hi, bins)),
        )
      }
    }
  })

  it('puts bin centres, the ends and outliers where the definition says', () => {
    const lo = -2,
      hi = 6,
      bins = 8 // width 1
    const data: number[] = []
    for (let k = 0; k < bins; k++) for (let copies = 0; copies <= k; copies++) data.push(lo + k + 0.5)
    data.push(lo, hi, hi, -2.0001, -100, 6.001, NaN, Infinity, -Infinity)
    const counts = wasmHistogram(Float32Array.from(data), lo, hi, bins)
    const expected = [1 + 1, 2, 3, 4, 5, 6, 7, 8 + 2, 2, 1] // lo joins bin 0, hi the last bin; below 2, above 1
    expect(Array.from(counts)).toEqual(expected)
    expect(Array.from(refHistogram(Float32Array.from(data), lo, hi, bins))).toEqual(expected)
  })

  it('accumulates into existing counts', () => {
    const data = normalish(rng(22), 1001, 1)
    const once = wasmHistogram(data, -1, 1, 16)
    const twice = wasmHistogram(data, -1, 1, 16, once)
    expect(Array.from(twice)).toEqual(Array.from(once, (c) => 2 * c))
    expect(once.reduce((a, b) => a + b, 0)).toBe(1001)
  })

  it('survives degenerate ranges and bin counts without writing out of bounds', () => {
    const data = Float32Array.from([0, 1, 2, NaN])
    // hi == lo: (x - lo) * Inf is NaN for x == lo, which lands in bin 0.
    expect(Array.from(wasmHistogram(data, 1, 1, 4))).toEqual([1, 0, 0, 0, 1, 1])
    // NaN bounds: no value is below or above, every index is NaN -> bin 0.
    expect(Array.from(wasmHistogram(data, NaN, NaN, 2))).toEqual([3, 0, 0, 0])
    // bins < 1: nothing is touched.
    h.reset()
    const counts = h.alloc(16)
    h.k.histogram(h.put(data), 4, 0, 1, 0, counts)
    h.k.histogram(h.put(data), 4, 0, 1, -5, counts)
    expect(h.u32(counts, 4).every((w) => w === 0xcdcdcdcd)).toBe(true)
  })
})
