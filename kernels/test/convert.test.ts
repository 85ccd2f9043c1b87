import { describe, expect, it, beforeAll } from 'vitest'
import {
  bf16ToF32,
  convertBF16,
  convertF16,
  convertF8E4M3,
  convertF8E5M2,
  f16ToF32,
  f8e4m3ToF32,
  f8e5m2ToF32,
} from '../reference/convert'
import { firstBitDifference, loadKernels, ODD_SIZES, rng, type KernelHarness } from '../testing/kernel-harness'

let h: KernelHarness
beforeAll(async () => {
  h = await loadKernels()
})

function allPatterns(count: number): Uint16Array {
  const out = new Uint16Array(count)
  for (let i = 0; i < count; i++) out[i] = i
  return out
}

describe('reference scalar decoders against values known from the formats', () => {
  it('f16', () => {
    expect(f16ToF32(0x3c00)).toBe(1)
    expect(f16ToF32(0xc000)).toBe(-2)
    expect(f16ToF32(0x3555)).toBe(0.333251953125)
    expect(f16ToF32(0x7bff)).toBe(65504)
    expect(f16ToF32(0x0400)).toBe(2 ** -14) // smallest normal
    expect(f16ToF32(0x0001)).toBe(2 ** -24) // smallest subnormal
    expect(f16ToF32(0x03ff)).toBe(1023 * 2 ** -24)
    expect(Object.is(f16ToF32(0x8000), -0)).toBe(true)
    expect(f16ToF32(0x7c00)).toBe(Infinity)
    expect(f16ToF32(0xfc00)).toBe(-Infinity)
    expect(f16ToF32(0x7e00)).toBeNaN()
    expect(f16ToF32(0xfc01)).toBeNaN()
  })
  it('bf16', () => {
    expect(bf16ToF32(0x3f80)).toBe(1)
    expect(bf16ToF32(0x4049)).toBe(3.140625)
    expect(bf16ToF32(0xc2f7)).toBe(-123.5)
    expect(bf16ToF32(0x0001)).toBe(2 ** -133) // f32 subnormal
    expect(bf16ToF32(0x7f80)).toBe(Infinity)
    expect(bf16ToF32(0x7fc0)).toBeNaN()
  })
  it('f8 E4M3FN: bias 7, no infinities, only S.1111.111 is NaN', () => {
    expect(f8e4m3ToF32(0x38)).toBe(1)
    expect(f8e4m3ToF32(0x7e)).toBe(448) // largest finite
    expect(f8e4m3ToF32(0x78)).toBe(256) // exponent 15 is a normal binade here
    expect(f8e4m3ToF32(0x08)).toBe(2 ** -6)
    expect(f8e4m3ToF32(0x01)).toBe(2 ** -9)
    expect(f8e4m3ToF32(0xb8)).toBe(-1)
    expect(Object.is(f8e4m3ToF32(0x80), -0)).toBe(true)
    expect(f8e4m3ToF32(0x7f)).toBeNaN()
    expect(f8e4m3ToF32(0xff)).toBeNaN()
  })
  it('f8 E5M2: bias 15 with infinities and NaNs', () => {
    expect(f8e5m2ToF32(0x3c)).toBe(1)
    expect(f8e5m2ToF32(0x7b)).toBe(57344)
    expect(f8e5m2ToF32(0x04)).toBe(2 ** -14)
    expect(f8e5m2ToF32(0x01)).toBe(2 ** -16)
    expect(f8e5m2ToF32(0x7c)).toBe(Infinity)
    expect(f8e5m2ToF32(0xfc)).toBe(-Infinity)
    expect(f8e5m2ToF32(0x7d)).toBeNaN()
    // E5M2 is the top byte of an f16.
    for (let b = 0; b < 256; b++) {
      const v = f8e5m2ToF32(b)
      if (Number.isNaN(v)) expect(f16ToF32(b << 8)).toBeNaN()
      else expect(f16ToF32(b << 8)).toBe(v)
    }
  })
})

describe('reference array conversions', () => {
  it('match the scalar decoders on every pattern', () => {
    const f16 = new Float32Array(65536)
    convertF16(allPatterns(65536), f16)
    const bf16 = new Float32Array(65536)
    convertBF16(allPatterns(65536), bf16)
    expect(
      firstBitDifference(
        f16,
        Float32Array.from({ length: 65536 }, (_, i) => f16ToF32(i)),
      ),
    ).toBe(-1)
    expect(
      firstBitDifference(
        bf16,
        Float32Array.from({ length: 65536 }, (_, i) => bf16ToF32(i)),
      ),
    ).toBe(-1)
  })
  it('refuse a destination that is too short', () => {
    expect(() => convertF16(new Uint16Array(4), new Float32Array(3))).toThrow(RangeError)
  })
})

describe('WASM conversions against the reference twins, every bit pattern', () => {
  const cases = [
    { name: 'convert_f16', bytes: 2, count: 65536, ref: f16ToF32 },
    { name: 'convert_bf16', bytes: 2, count: 65536, ref: bf16ToF32 },
    { name: 'convert_f8e4m3', bytes: 1, count: 256, ref: f8e4m3ToF32 },
    { name: 'convert_f8e5m2', bytes: 1, count: 256, ref: f8e5m2ToF32 },
  ] as const

  for (const c of cases) {
    it(`${c.name}: all ${c.count} patterns, at several alignments and tail lengths`, () => {
      const patterns = c.bytes === 2 ? allPatterns(c.count) : Uint8Array.from({ length: 256 }, (_, i) => i)
      const expected = Float32Array.from({ length: c.count }, (_, i) => c.ref(i))
      for (const misalign of [0, 2, 4]) {
        h.reset()
        const src = h.put(patterns, misalign)
        const dst = h.alloc(c.count * 4, misalign)
        h.k[c.name](src, dst, c.count)
        expect(firstBitDifference(h.f32(dst, c.count), expected)).toBe(-1)
      }
      // Odd lengths: the scalar tail and the vector body must agree, and nothing past n is written.
      for (const n of ODD_SIZES.filter((s) => s <= c.count)) {
        h.reset()
        const offset = (n * 7919) % (c.count - n + 1)
        const src = h.put(patterns.subarray(offset, offset + n))
        const dst = h.alloc((n + 4) * 4)
        h.k[c.name](src, dst, n)
        expect(firstBitDifference(h.f32(dst, n), expected.subarray(offset, offset + n))).toBe(-1)
        expect(Array.from(h.u32(dst + n * 4, 4))).toEqual([0xcdcdcdcd, 0xcdcdcdcd, 0xcdcdcdcd, 0xcdcdcdcd])
      }
    })
  }

  it('convert_bf16 keeps every bit, NaN payloads included', () => {
    h.reset()
    const src = h.put(allPatterns(65536))
    const dst = h.alloc(65536 * 4)
    h.k.convert_bf16(src, dst, 65536)
    const out = h.u32(dst, 65536)
    for (let i = 0; i < 65536; i++) if (out[i] !== i * 65536) expect(out[i]).toBe(i * 65536)
  })

  it('convert_f16 matches the reference array conversion on random data', () => {
    const random = rng(11)
    const src16 = Uint16Array.from({ length: 4099 }, () => Math.floor(random() * 65536))
    const expected = new Float32Array(4099)
    convertF16(src16, expected)
    h.reset()
    const src = h.put(src16, 6)
    const dst = h.alloc(4099 * 4)
    h.k.convert_f16(src, dst, 4099)
    expect(firstBitDifference(h.f32(dst, 4099), expected)).toBe(-1)
  })

  it('the FP8 reference arrays match the kernels', () => {
    const bytes = Uint8Array.from({ length: 1000 }, (_, i) => (i * 37) & 255)
    for (const [kernel, ref] of [
      ['convert_f8e4m3', convertF8E4M3],
      ['convert_f8e5m2', convertF8E5M2],
    ] as const) {
      const expected = new Float32Array(1000)
      ref(bytes, expected)
      h.reset()
      const src = h.put(bytes, 3)
      const dst = h.alloc(4000)
      h.k[kernel](src, dst, 1000)
      expect(firstBitDifference(h.f32(dst, 1000), expected)).toBe(-1)
    }
  })
})
