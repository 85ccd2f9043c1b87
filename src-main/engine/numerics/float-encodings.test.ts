// The scalar encodings against independent expectations: decoders written from the IEEE / OCP field
// definitions here, hand-worked bit patterns, a value-based fp16 rounding (a second algorithm), and for
// fp8 a nearest-value search over every code.

import { describe, expect, it } from 'vitest'
import { normalish, rng } from '../../../kernels/testing/kernel-harness'
import {
  encodeBf16Ggml,
  encodeHalf,
  f32ToBf16Bits,
  f32ToF16Bits,
  f32ToF8E4M3Bits,
  f32ToF8E5M2Bits,
  f8e4m3ToF32,
  f8e5m2ToF32,
  roundToF16,
} from './float-encodings'
import { roundHalfEven } from './rounding'

/** IEEE 754 binary16 decoded from the definition: (-1)^s · 2^(e-15) · 1.m, or 2^-14 · 0.m for subnormals. */
function decodeF16(h: number): number {
  const sign = h & 0x8000 ? -1 : 1
  const e = (h >> 10) & 0x1f
  const m = h & 0x3ff
  if (e === 0x1f) return m ? NaN : sign * Infinity
  if (e === 0) return sign * m * 2 ** -24
  return sign * (1 + m / 1024) * 2 ** (e - 15)
}

function decodeBf16(b: number): number {
  const view = new DataView(new ArrayBuffer(4))
  view.setUint32(0, b << 16)
  return view.getFloat32(0)
}

describe('f32 -> F16', () => {
  it('encodes every half value back to itself', () => {
    for (let h = 0; h < 0x10000; h++) {
      const x = decodeF16(h)
      if (Number.isNaN(x)) {
        expect(f32ToF16Bits(x) & 0x7c00).toBe(0x7c00)
        continue
      }
      expect(f32ToF16Bits(x)).toBe(h)
    }
  })

  it('rounds to nearest, ties to even, between neighbouring halves', () => {
    // Midpoints between consecutive positive normal and subnormal halves (exact in f32).
    for (const h of [0x0001, 0x0002, 0x03ff, 0x0400, 0x3c00, 0x3c01, 0x7bfe]) {
      const mid = (decodeF16(h) + decodeF16(h + 1)) / 2
      expect(f32ToF16Bits(mid)).toBe(h % 2 === 0 ? h : h + 1)
      expect(f32ToF16Bits(Math.fround(mid * (1 + 2 ** -20)))).toBe(h + 1)
    }
    expect(f32ToF16Bits(65520)).toBe(0x7c00) // halfway past the largest half: rounds (to even) to infinity
    expect(f32ToF16Bits(65519)).toBe(0x7bff)
    expect(f32ToF16Bits(2 ** -25)).toBe(0) // tie between 0 and the smallest subnormal
    expect(f32ToF16Bits(Math.fround(2 ** -25 * 1.01))).toBe(1)
    expect(f32ToF16Bits(-0)).toBe(0x8000)
    expect(f32ToF16Bits(1e-30)).toBe(0)
  })
})

describe('f32 -> BF16', () => {
  it('keeps the top 16 bits of values BF16 can hold, and rounds ties to even', () => {
    for (const b of [0x0000, 0x3f80, 0xbf80, 0x7f7f, 0x0001, 0x4049, 0x7f80, 0xff80]) {
      expect(f32ToBf16Bits(decodeBf16(b))).toBe(b)
    }
    // 1 + 2^-8 lies halfway between 1 (0x3f80, even) and 1 + 2^-7 (0x3f81).
    expect(f32ToBf16Bits(1 + 2 ** -8)).toBe(0x3f80)
    expect(f32ToBf16Bits(1 + 3 * 2 ** -8)).toBe(0x3f82)
    expect(f32ToBf16Bits(Math.fround(1 + 2 ** -8 + 2 ** -20))).toBe(0x3f81)
    expect(f32ToBf16Bits(NaN) & 0x7fc0).toBe(0x7fc0)
  })

  it('agrees between the scalar and the bulk encoder', () => {
    const values = Float32Array.from({ length: 1000 }, (_, i) => Math.sin(i) * 10 ** ((i % 20) - 10))
    values[7] = NaN
    values[8] = -Infinity
    for (const dtype of ['BF16', 'F16'] as const) {
      const out = new Uint16Array(values.length)
      encodeHalf(values, dtype, out)
      const scalar = dtype === 'BF16' ? f32ToBf16Bits : f32ToF16Bits
      expect(Array.from(out)).toEqual(Array.from(values, scalar))
    }
  })
})

describe('bf16 as ggml writes it (encodeBf16Ggml)', () => {
  it("rounds like f32ToBf16Bits on numbers, keeps a NaN's sign and payload with the quiet bit, and decodes", () => {
    const w = Float32Array.from([1, 1 + 2 ** -8, 1 + 3 * 2 ** -8, -65504, 2 ** -140, Infinity, 0])
    const bits = new Uint32Array(w.buffer)
    const { bytes, decoded } = encodeBf16Ggml(w)
    const halves = new Uint16Array(bytes.buffer, bytes.byteOffset, w.length)
    for (let i = 0; i < w.length; i++) {
      expect(halves[i]).toBe(f32ToBf16Bits(w[i]))
      expect(decoded[i]).toBe(decodeBf16(halves[i]))
    }
    bits[0] = 0xff800001 // a negative signalling NaN with payload 1
    const nan = encodeBf16Ggml(w)
    expect(new Uint16Array(nan.bytes.buffer)[0]).toBe(0xffc0)
    expect(bits[1]).toBe(0x3f808000) // the input is read, not changed
  })
})

/**
 * fp16 rounding by value, a second algorithm: a half has 11 significant bits, so x rounds to a multiple of
 * its quantum 2^(e − 10) (2^−24 below the normal range), half to even; from 65520 on it is infinity.
 */
function roundToF16ByValue(x: number): number {
  const v = Math.fround(x)
  if (!Number.isFinite(v) || v === 0) return v
  const a = Math.abs(v)
  if (a >= 65520) return v > 0 ? Infinity : -Infinity
  let quantum = 2 ** -24
  if (a >= 2 ** -14) {
    let e = Math.floor(Math.log2(a))
    if (2 ** e > a) e--
    else if (2 ** (e + 1) <= a) e++
    quantum = 2 ** (e - 10)
  }
  const r = roundHalfEven(v / quantum) * quantum
  return r === 0 ? (v < 0 ? -0 : 0) : r
}

describe('roundToF16', () => {
  it('equals rounding by value on normals, subnormals, ties, overflow and signed zeros', () => {
    const xs: number[] = [
      0,
      -0,
      1,
      -1,
      65504,
      65519,
      65520,
      -65520,
      1e6,
      2 ** -24,
      2 ** -25,
      -(2 ** -25),
      3 * 2 ** -26,
      2 ** -14,
      2 ** -14 - 2 ** -25,
      1 + 2 ** -11,
      1 + 3 * 2 ** -11,
      -(1 + 2 ** -11),
      2048 + 1,
      2048 + 3,
      0.1,
      1 / 3,
      Infinity,
      -Infinity,
    ]
    const random = rng(7)
    for (const scale of [1e-7, 1e-5, 1e-3, 0.1, 1, 100, 3e4, 1e5]) xs.push(...normalish(random, 500, scale))
    for (const x of xs) expect(Object.is(roundToF16(x), roundToF16ByValue(x)), `x = ${x}`).toBe(true)
    expect(roundToF16(NaN)).toBeNaN()
  })

  it('hand-worked values: ties to even, the subnormal floor and overflow', () => {
    expect(roundToF16(1 + 2 ** -11)).toBe(1) // tie between 1 and 1 + 2^-10: to the even 1
    expect(roundToF16(1 + 3 * 2 ** -11)).toBe(1 + 2 ** -9) // tie: to the even 1 + 2·2^-10
    expect(roundToF16(0.1)).toBe(0.0999755859375) // 0x2e66
    expect(roundToF16(3 * 2 ** -26)).toBe(2 ** -24) // 0.75 of the smallest subnormal rounds up
    expect(Object.is(roundToF16(-(2 ** -26)), -0)).toBe(true)
    expect(roundToF16(65519)).toBe(65504)
    expect(roundToF16(65520)).toBe(Infinity)
  })
})

describe('roundHalfEven', () => {
  it('rounds halves to the even neighbour on both signs, everything else to nearest', () => {
    expect([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 2.4999, -2.5001, 3, 7.5].map(roundHalfEven)).toEqual([
      0, 2, 2, -0, -2, -2, 2, -3, 3, 8,
    ])
  })
})

/** The fp8 code nearest to x by search over every finite code, ties to the even code (independent of the encoder). */
function nearestCode(x: number, decode: (b: number) => number): number {
  let best = -1
  let bestErr = Infinity
  for (let b = 0; b < 256; b++) {
    const v = decode(b)
    if (!Number.isFinite(v)) continue
    const err = Math.abs(v - x)
    if (err < bestErr || (err === bestErr && (b & 1) === 0 && (best & 1) === 1)) {
      best = b
      bestErr = err
    }
  }
  // A value that rounds to zero keeps its sign, as IEEE rounding does: −0 is code 0x80.
  return best === 0 && (x < 0 || Object.is(x, -0)) ? 0x80 : best
}

describe.each([
  { name: 'E4M3FN', encode: f32ToF8E4M3Bits, decode: f8e4m3ToF32, max: 448, overflow: 0x7f },
  { name: 'E5M2', encode: f32ToF8E5M2Bits, decode: f8e5m2ToF32, max: 57344, overflow: 0x7c },
])('f32 -> fp8 $name', ({ encode, decode, max, overflow }) => {
  it('encodes every finite code back to itself, -0 included', () => {
    for (let b = 0; b < 256; b++) {
      const v = decode(b)
      if (Number.isFinite(v)) expect(encode(v), `code ${b}`).toBe(b)
    }
  })

  it('rounds every value between codes to the nearest one, ties to even (against a search)', () => {
    const random = rng(11)
    const xs: number[] = []
    for (let b = 0; b < 255; b++) {
      const lo = decode(b),
        hi = decode(b + 1)
      if (!Number.isFinite(lo) || !Number.isFinite(hi) || Math.sign(lo) !== Math.sign(hi) || Object.is(lo, -0)) continue
      xs.push((lo + hi) / 2, lo + (hi - lo) / 3, lo + (2 * (hi - lo)) / 3)
    }
    for (const scale of [2 ** -14, 2 ** -8, 1, 16, max / 4]) xs.push(...normalish(random, 200, scale))
    for (const x of xs.map(Math.fround)) {
      if (Math.abs(x) > max) continue
      expect(encode(x), `x = ${x}`).toBe(nearestCode(x, decode))
    }
  })

  it('overflows past the largest finite value as the format does; NaN stays NaN', () => {
    expect(encode(max)).toBe(nearestCode(max, decode))
    expect(encode(-max) & 0x7f).toBe(nearestCode(max, decode))
    expect(encode(max * 2)).toBe(overflow)
    expect(encode(-Infinity)).toBe(0x80 | overflow)
    expect(decode(encode(NaN))).toBeNaN()
    expect(decode(encode(2 ** -30))).toBe(0)
  })
})

describe('fp8 hand-worked patterns', () => {
  it('E4M3FN: 1, the smallest subnormal, the largest normal; past 448 the tie rounds to even, beyond it NaN', () => {
    expect(f32ToF8E4M3Bits(1)).toBe(0x38)
    expect(f32ToF8E4M3Bits(-(2 ** -9))).toBe(0x81)
    expect(f32ToF8E4M3Bits(464)).toBe(0x7e) // halfway between 448 (mantissa 110) and 480: to 448
    expect(f32ToF8E4M3Bits(465)).toBe(0x7f) // nearer 480, which E4M3FN lacks: NaN, as torch casts
    expect(f32ToF8E4M3Bits(1.0625)).toBe(0x38) // halfway between 1 and 1.125: to the even 1
    expect(f32ToF8E4M3Bits(1.1875)).toBe(0x3a) // halfway between 1.125 and 1.25: to the even 1.25
  })

  it('E5M2: 1, 57344, and the tie above it going to infinity', () => {
    expect(f32ToF8E5M2Bits(1)).toBe(0x3c)
    expect(f32ToF8E5M2Bits(57344)).toBe(0x7b)
    expect(f32ToF8E5M2Bits(61440)).toBe(0x7c) // halfway to 65536: the even neighbour is infinity
    expect(f32ToF8E5M2Bits(-(2 ** -16))).toBe(0x81)
  })
})
