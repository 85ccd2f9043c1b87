import { describe, expect, it } from 'vitest'
import { encodeHalf, f32ToBf16Bits, f32ToF16Bits } from './float-encode'

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
