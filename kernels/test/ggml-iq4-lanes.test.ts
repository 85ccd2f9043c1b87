// IQ4_NL / IQ4_XS in SIMD lanes (kernels/assembly/ggml-quantize-iq.ts): the kernel finds a grid index by
// counting the midpoints above x instead of the twin's binary search with its rounded tie rule.
// - The twin's gridIndexByMidpoints against bestIndex on every f32 within 2^13 ulps of each midpoint and
//   grid value (where a rounded difference could decide), special values and random bit patterns.
// - The kernels against the twin on groups whose first trial (max = −127, so the scale is exactly 1)
//   lands on the midpoints, one ulp either side and the grid values themselves, with and without
//   importances, at block counts that leave the last group of four short.
// The golden files and hostile data are in ggml-more-types.test.ts and ggml-imatrix-quantize.test.ts.

import { beforeAll, describe, expect, it } from 'vitest'
import {
  bestIndex,
  gridIndexByMidpoints,
  IQ4_MIDPOINTS,
  quantizeIQ4_NL,
  quantizeIQ4_XS,
} from '../reference/ggml-quantize-iq'
import { IQ4_VALUES } from '../reference/ggml-dequant-iq'
import { QUANT_SCRATCH_BYTES, type KernelName } from '../host/exports'
import { loadKernels, rng, type KernelHarness } from '../testing/kernel-harness'

let h: KernelHarness
beforeAll(async () => {
  h = await loadKernels()
})

const bits = new Uint32Array(1)
const float = new Float32Array(bits.buffer)

/** The f32 `steps` ulps away from v (toward +∞ for positive steps), as a number. */
function ulpsAway(v: number, steps: number): number {
  float[0] = v
  const negative = bits[0] >>> 31 === 1
  // Walk the magnitude: up for positive v and positive steps, down otherwise (crossing zero is not needed here).
  bits[0] = (bits[0] + (negative ? -steps : steps)) >>> 0
  return float[0]
}

describe('IQ4 grid index by midpoints (twin)', () => {
  it('the midpoints are exact f32 values between neighbouring grid values', () => {
    expect(IQ4_MIDPOINTS).toHaveLength(15)
    IQ4_MIDPOINTS.forEach((m, i) => {
      expect(Math.fround(m)).toBe(m)
      expect(m).toBeGreaterThan(IQ4_VALUES[i])
      expect(m).toBeLessThan(IQ4_VALUES[i + 1])
    })
  })

  it('equals bestIndex within 2^13 ulps of every midpoint and grid value, in both signs of scale', () => {
    let checked = 0
    for (const centre of [...IQ4_MIDPOINTS, ...IQ4_VALUES]) {
      for (let s = -8192; s <= 8192; s++) {
        const x = ulpsAway(centre, s)
        const want = bestIndex(x)
        if (gridIndexByMidpoints(x) !== want) expect(gridIndexByMidpoints(x), `x = ${x}`).toBe(want)
        checked++
      }
    }
    expect(checked).toBe(31 * 16385)
  })

  it('equals bestIndex on special values and random bit patterns', () => {
    const special = [NaN, Infinity, -Infinity, 0, -0, 1e-45, -1e-45, 3.4e38, -3.4e38, -127, 113, -128, 114]
    for (const x of special) expect(gridIndexByMidpoints(x), `x = ${x}`).toBe(bestIndex(x))
    const random = rng(23)
    for (let i = 0; i < 200_000; i++) {
      bits[0] = Math.floor(random() * 2 ** 32)
      const x = float[0]
      // Half of them in the grid's range, where the search has work to do.
      const y = i % 2 ? x : Math.fround(random() * 260 - 135)
      if (gridIndexByMidpoints(y) !== bestIndex(y)) expect(gridIndexByMidpoints(y), `x = ${y}`).toBe(bestIndex(y))
    }
  })
})

/** Groups of 32 led by −127 (so the first trial's scale is exactly 1) over midpoints, their neighbours and grid values. */
function tieGroups(groups: number): Float32Array {
  const pool: number[] = []
  for (const m of IQ4_MIDPOINTS) pool.push(m, ulpsAway(m, 1), ulpsAway(m, -1))
  pool.push(...IQ4_VALUES.slice(1))
  const x = new Float32Array(groups * 32)
  for (let g = 0; g < groups; g++) {
    x[g * 32] = -127
    for (let j = 1; j < 32; j++) x[g * 32 + j] = pool[(g * 31 + j * 7) % pool.length]
  }
  return x
}

type Call = (...args: number[]) => void
const kernel = (name: KernelName): Call => (h.k as unknown as Record<KernelName, Call>)[name]

function wasmPlain(name: KernelName, x: Float32Array, nblocks: number, bytes: number): Uint8Array {
  h.reset()
  const src = h.put(x, 2)
  const dst = h.alloc(bytes + 16, 1)
  const scratch = h.alloc(QUANT_SCRATCH_BYTES, 3)
  kernel(name)(src, dst, nblocks, scratch)
  expect(h.u8(dst + bytes, 16).every((b) => b === 0xcd)).toBe(true)
  return h.u8(dst, bytes).slice()
}

function wasmWeighted(name: KernelName, x: Float32Array, rows: number, cols: number, qw: Float32Array, bytes: number) {
  h.reset()
  const src = h.put(x, 1)
  const imp = h.put(qw, 3)
  const dst = h.alloc(bytes + 16)
  const scratch = h.alloc(QUANT_SCRATCH_BYTES, 2)
  kernel(name)(src, dst, rows, cols, imp, scratch)
  expect(h.u8(dst + bytes, 16).every((b) => b === 0xcd)).toBe(true)
  return h.u8(dst, bytes).slice()
}

describe('IQ4 kernels in lanes against the twin on ties', () => {
  it('IQ4_NL, 1 to 9 blocks (short last groups), plain and with importances', () => {
    for (let blocks = 1; blocks <= 9; blocks++) {
      const x = tieGroups(blocks)
      const want = new Uint8Array(blocks * 18)
      quantizeIQ4_NL(x, blocks, want)
      expect(wasmPlain('quantize_iq4_nl', x, blocks, want.length), `${blocks} blocks`).toEqual(want)
      // Rows of one block each: every group of four spans rows with different σ².
      const qw = Float32Array.from({ length: 32 }, (_, j) => 0.5 + (j % 5))
      const weighted = new Uint8Array(blocks * 18)
      const perElement = Float32Array.from({ length: x.length }, (_, i) => qw[i % 32])
      quantizeIQ4_NL(x, blocks, weighted, perElement)
      expect(wasmWeighted('quantize_iq4_nl_imatrix', x, blocks, 32, qw, weighted.length), `${blocks} rows`).toEqual(
        weighted,
      )
    }
  })

  it('IQ4_XS, plain and with importances', () => {
    const x = tieGroups(16)
    const want = new Uint8Array(2 * 136)
    quantizeIQ4_XS(x, 2, want)
    expect(wasmPlain('quantize_iq4_xs', x, 2, want.length)).toEqual(want)
    const qw = Float32Array.from({ length: 256 }, (_, j) => 0.25 + (j % 7))
    const weighted = new Uint8Array(2 * 136)
    quantizeIQ4_XS(
      x,
      2,
      weighted,
      Float32Array.from({ length: x.length }, (_, i) => qw[i % 256]),
    )
    expect(wasmWeighted('quantize_iq4_xs_imatrix', x, 2, 256, qw, weighted.length)).toEqual(weighted)
  })
})
