// The GGUF quantizers: byte-exact against llama.cpp's own output (../shared golden files), the WASM
// kernels byte-exact against the reference twins on hostile data, the fp16 encoder and nearest_int against
// independent definitions, and quantize -> dequantize errors within each format's bound.

import { beforeAll, describe, expect, it } from 'vitest'
import { f16ToF32 } from '../reference/convert'
import { dequantizeRow } from '../reference/ggml-dequant'
import {
  f32ToF16Bits,
  nearestInt,
  QUANT_BLOCKS,
  quantizeQ4_0,
  quantizeQ4_K,
  quantizeQ6_K,
  quantizeRow,
  type QuantType,
} from '../reference/ggml-quantize'
import { openModelFiles } from '../../src-main/engine/formats/open'
import { readTensorBytes, readTensorF32 } from '../../src-main/engine/formats/read'
import { hasShared, shared, SKIP_SHARED } from '../../src-main/engine/testing/shared-data'
import { loadKernels, normalish, rng, type KernelHarness } from '../testing/kernel-harness'
import { QUANT_SCRATCH_BYTES } from '../host/exports'

let h: KernelHarness
beforeAll(async () => {
  h = await loadKernels()
})

const TYPES: readonly QuantType[] = ['Q8_0', 'Q4_0', 'Q4_K', 'Q5_K', 'Q6_K']
const KERNELS = {
  Q8_0: 'quantize_q8_0',
  Q4_0: 'quantize_q4_0',
  Q4_K: 'quantize_q4_k',
  Q5_K: 'quantize_q5_k',
  Q6_K: 'quantize_q6_k',
} as const

function referenceBytes(type: QuantType, x: Float32Array): Uint8Array {
  const out = new Uint8Array((x.length / QUANT_BLOCKS[type].elements) * QUANT_BLOCKS[type].bytes)
  quantizeRow(type, x, x.length, out)
  return out
}

/** The kernel's bytes for x; also checks that nothing is written past the last block. */
function wasmBytes(type: QuantType, x: Float32Array, srcMisalign = 0, dstMisalign = 0): Uint8Array {
  const nblocks = x.length / QUANT_BLOCKS[type].elements
  const bytes = nblocks * QUANT_BLOCKS[type].bytes
  h.reset()
  const src = h.put(x, srcMisalign)
  const dst = h.alloc(bytes + 16, dstMisalign)
  const scratch = h.alloc(QUANT_SCRATCH_BYTES, dstMisalign + 3)
  h.k[KERNELS[type]](src, dst, nblocks, scratch)
  expect(
    h.u8(dst + bytes, 16).every((b) => b === 0xcd),
    `${type}: bytes written past the output`,
  ).toBe(true)
  return h.u8(dst, bytes).slice()
}

/** '' when equal, else where the first differing block is and both versions of it. */
function firstBlockDifference(type: QuantType, got: Uint8Array, want: Uint8Array): string {
  if (got.length !== want.length) return `${got.length} bytes, expected ${want.length}`
  const size = QUANT_BLOCKS[type].bytes
  for (let i = 0; i < want.length; i++) {
    if (got[i] === want[i]) continue
    const block = Math.floor(i / size)
    const part = (a: Uint8Array) => Array.from(a.subarray(block * size, (block + 1) * size)).join(',')
    return `block ${block} (byte ${i % size}) differs:\n  got  ${part(got)}\n  want ${part(want)}`
  }
  return ''
}

if (!hasShared) console.log(`[kernels/ggml-quantize.test] golden check: ${SKIP_SHARED}`)

describe.skipIf(!hasShared)("llama.cpp's quantizations of small-llama (llama-quantize --pure), byte for byte", () => {
  const golden = (name: string) => shared('reference', 'gguf-golden', `small-llama-${name}.gguf`)
  for (const type of TYPES) {
    it(`${type}: every 2-D weight, reference and WASM`, async () => {
      const source = await openModelFiles(golden('f32'))
      const target = await openModelFiles(golden(type))
      const weights = source.tensors.filter((t) => t.shape.length === 2)
      expect(weights.length).toBe(16) // 7 per layer, 2 layers, embeddings and output
      for (const entry of weights) {
        const quantized = target.tensors.find((t) => t.name === entry.name)
        expect(quantized?.dtype, entry.name).toBe(type)
        const want = await readTensorBytes(quantized!, 0, quantized!.byteLength)
        const x = await readTensorF32(entry)
        expect(firstBlockDifference(type, referenceBytes(type, x), want), `reference, ${entry.name}`).toBe('')
        expect(firstBlockDifference(type, wasmBytes(type, x), want), `WASM, ${entry.name}`).toBe('')
      }
    }, 20_000)
  }
})

// ---- data that stresses the special cases of every quantizer ----

const SUBNORMAL = 2 ** -140 // an f32 subnormal; its fp16 scales underflow to 0

/** One 256-element block per case; every case is a whole number of 256 (and so of 32) elements. */
function hostileCases(): Array<[string, Float32Array]> {
  const random = rng(42)
  const block = (f: (i: number) => number) => Float32Array.from({ length: 256 }, (_, i) => f(i))
  const gauss = () => normalish(random, 1)[0]
  return [
    ['all zero', block(() => 0)],
    ['negative zeros', block(() => -0)],
    ['constant positive', block(() => 0.75)],
    ['constant negative', block(() => -3)],
    ['negative only', block(() => -Math.abs(gauss()) - 0.01)],
    ['positive only', block(() => Math.abs(gauss()) + 0.01)],
    ['one huge outlier', block((i) => (i === 77 ? 1e4 : gauss() * 0.01))],
    ['one huge negative outlier per 32', block((i) => (i % 32 === 5 ? -500 : gauss()))],
    ['subnormals', block(() => gauss() * SUBNORMAL)],
    // Q4_0's d = m / -8 and Q8_0's amax / 127 are rounded here, and Q8_0's 1 / d overflows: the short paths
    // of both kernels must hand these blocks to the careful ones.
    ['deep subnormals', block(() => gauss() * 2 ** -146)],
    ['scales at the bottom of the normal range', block((i) => (i % 32 === 0 ? -(2 ** -123) : gauss() * 2 ** -125))],
    ['mixed subnormal and normal', block((i) => (i < 128 ? gauss() * SUBNORMAL : gauss() * 1e-30))],
    ['tiny scale (f16 underflow)', block(() => gauss() * 1e-9)],
    ['huge scale (f16 overflow)', block(() => gauss() * 1e7)],
    // A sub-block whose 6-bit / int8 scale rounds to 0: llama.cpp keeps that sub-block's fitted levels.
    ['one quiet sub-block of 32', block((i) => (i < 32 ? gauss() * 1e-4 : gauss()))],
    ['one quiet sub-block of 16', block((i) => (i >= 48 && i < 64 ? gauss() * 1e-5 : gauss()))],
    [
      'alternating zero and quiet sub-blocks',
      block((i) => ((i >> 4) % 2 ? 0 : (i >> 5) % 3 ? gauss() : gauss() * 1e-3)),
    ],
    ['exact ties for the rounding', block((i) => ((i % 17) - 8) * 0.5)],
    // Absmax 127 makes Q8_0's scale exactly 1, so every x.5 is a tie its rounding must take away from zero.
    ['exact ties at scale 1', block((i) => (i % 32 === 9 ? -127 : (i % 29) - 14.5))],
    ['two levels', block((i) => (i % 2 ? 1 : -1))],
    [
      'NaN and infinities',
      block((i) => (i % 41 === 3 ? NaN : i % 53 === 7 ? Infinity : i % 59 === 11 ? -Infinity : gauss())),
    ],
    ['NaN last in each 32', block((i) => (i % 32 === 31 ? NaN : gauss()))],
    // The K-quant fits run four sub-blocks per SIMD vector: one odd sub-block must not disturb its neighbours.
    ['one NaN in one sub-block', block((i) => (i === 200 ? NaN : gauss()))],
    ['one infinity in one sub-block', block((i) => (i === 100 ? -Infinity : gauss()))],
    ['one huge sub-block beside small ones', block((i) => (i >= 160 && i < 192 ? gauss() * 1e30 : gauss() * 1e-3))],
    ['largest finite', block((i) => (i % 2 ? 3.4028235e38 : -3.4028235e38 * random()))],
  ]
}

describe('WASM kernels against the reference twins', () => {
  for (const type of TYPES) {
    it(`${KERNELS[type]}: hostile blocks, byte-exact`, () => {
      for (const [name, x] of hostileCases()) {
        expect(firstBlockDifference(type, wasmBytes(type, x), referenceBytes(type, x)), name).toBe('')
      }
    })

    it(`${KERNELS[type]}: random data of several shapes and scales, misaligned buffers, byte-exact`, () => {
      const random = rng(7 + type.length)
      const blockElements = QUANT_BLOCKS[type].elements
      const shapes: Array<[number, number, number]> = [
        [1, 1, 0],
        [3, 0.02, 4],
        [17, 1e-3, 8],
        [40, 50, 12],
      ]
      for (const [nblocks, scale, misalign] of shapes) {
        const gaussian = normalish(random, nblocks * blockElements, scale)
        const heavy = gaussian.map((v) => (v * v * v) / (scale * scale)) // heavy tails: outliers in most blocks
        for (const x of [gaussian, heavy]) {
          expect(firstBlockDifference(type, wasmBytes(type, x, misalign, misalign + 1), referenceBytes(type, x))).toBe(
            '',
          )
        }
      }
    })
  }

  it('zero blocks write nothing', () => {
    for (const type of TYPES) expect(wasmBytes(type, new Float32Array(0)).length).toBe(0)
  })
})

describe('block rules, from the C semantics', () => {
  it('the quiet-sub-block cases really take the "scale rounds to 0" path', () => {
    const cases = new Map(hostileCases())
    const q4k = referenceBytes('Q4_K', cases.get('one quiet sub-block of 32')!)
    expect(q4k[4] & 63).toBe(0) // sub-block 0's 6-bit scale
    expect(q4k.subarray(16, 48).some((b) => (b & 15) !== 0)).toBe(true) // its fitted levels survive
    const q6k = referenceBytes('Q6_K', cases.get('one quiet sub-block of 16')!)
    expect(q6k[192 + 3]).toBe(0) // sub-block 3's int8 scale
  })

  it('all-zero blocks: Q4_0 stores d = 0 / -8 = -0 (0x8000), Q6_K stores 210 zero bytes', () => {
    const q40 = new Uint8Array(18)
    quantizeQ4_0(new Float32Array(32), 1, q40)
    expect(q40[0] | (q40[1] << 8)).toBe(0x8000)
    expect(Array.from(q40.subarray(2))).toEqual(new Array(16).fill(0x88)) // trunc(0 + 8.5) = 8 in both nibbles
    const q6k = new Uint8Array(210).fill(0xee)
    quantizeQ6_K(new Float32Array(256), 1, q6k)
    expect(q6k.every((b) => b === 0)).toBe(true)
  })

  it('Q4_0 takes the first element of largest magnitude, sign kept, and clamps the opposite extreme to 15', () => {
    const x = new Float32Array(32)
    x[3] = -2
    x[9] = 2
    x[20] = 1
    const out = new Uint8Array(18)
    quantizeQ4_0(x, 1, out)
    expect(f16ToF32(out[0] | (out[1] << 8))).toBe(0.25) // d = -2 / -8
    expect(out[2 + 3] & 15).toBe(0) // -2 / 0.25 + 8.5 = 0.5 -> 0
    expect(out[2 + 9] & 15).toBe(15) // 2 / 0.25 + 8.5 = 16.5 -> 16 -> 15
    expect(out[2 + 4] >> 4).toBe(12) // element 20: 1 / 0.25 + 8.5 = 12.5 -> 12
  })

  it('quantizeRow refuses partial blocks, short buffers and unknown types', () => {
    expect(() => quantizeRow('Q4_K', new Float32Array(255), 255, new Uint8Array(144))).toThrow(RangeError)
    expect(() => quantizeRow('Q8_0', new Float32Array(64), 64, new Uint8Array(34))).toThrow(/destination/)
    expect(() => quantizeQ4_K(new Float32Array(255), 1, new Uint8Array(144))).toThrow(/source/)
    expect(() => quantizeRow('Q2_K' as QuantType, new Float32Array(256), 256, new Uint8Array(176))).toThrow(
      /unsupported/,
    )
  })
})

// ---- the rounding helpers against independent definitions ----

/** Round half to even, from Math.round (which rounds halves up). */
function roundHalfEven(x: number): number {
  const r = Math.round(x)
  return (r - x === 0.5 && r % 2 !== 0 ? r - 1 : r) + 0 // + 0 turns -0 into 0, as an int would be
}

describe('nearestInt (llama.cpp nearest_int)', () => {
  it('rounds half to even for |x| < 2^22', () => {
    const random = rng(3)
    for (let i = 0; i < 20000; i++) {
      const magnitude = 2 ** (random() * 22 - 2)
      const x = Math.fround((random() < 0.5 ? -1 : 1) * magnitude)
      expect(nearestInt(x)).toBe(roundHalfEven(x))
    }
    for (let k = -40; k <= 40; k++) expect(nearestInt(k + 0.5)).toBe(roundHalfEven(k + 0.5))
    expect(nearestInt(-0)).toBe(0)
  })
})

/** The positive finite f16 values, ascending (bit patterns 0x0000 .. 0x7bff are monotonic). */
const POSITIVE_F16 = Float64Array.from({ length: 0x7c00 }, (_, h) => f16ToF32(h))

/** Round-to-nearest-even f16 of |x| by search over every half, then the sign: an independent encoder. */
function f16BySearch(x: number): number {
  if (Number.isNaN(x)) return 0x7e00 // the sign of a JS NaN is not observable: callers compare NaN apart
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0
  const a = Math.abs(x)
  // The ulp of the top binade is 32, so from 65504 + 16 on the nearest even value is infinity.
  if (a >= 65520) return sign | 0x7c00
  let lo = 0,
    hi = POSITIVE_F16.length - 1
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1
    if (POSITIVE_F16[mid] <= a) lo = mid
    else hi = mid
  }
  if (a >= POSITIVE_F16[hi]) return sign | hi
  const below = a - POSITIVE_F16[lo],
    above = POSITIVE_F16[hi] - a
  if (below < above) return sign | lo
  if (above < below) return sign | hi
  return sign | (lo % 2 === 0 ? lo : hi)
}

describe('f32ToF16Bits', () => {
  it('round-trips every f16 value; every NaN pattern becomes the quiet NaN 0x7e00', () => {
    for (let bits = 0; bits < 0x10000; bits++) {
      const value = f16ToF32(bits)
      const isNaN = (bits & 0x7c00) === 0x7c00 && (bits & 0x3ff) !== 0
      expect(f32ToF16Bits(value)).toBe(isNaN ? 0x7e00 : bits) // JS NaN has no sign: it encodes as +NaN
    }
  })

  it('rounds ties between neighbouring halves to the even one, and anything off the tie to the nearer', () => {
    for (let bits = 0; bits < 0x7bff; bits++) {
      const lo = f16ToF32(bits),
        hi = f16ToF32(bits + 1)
      const tie = (lo + hi) / 2 // exact in f32: one bit more than a half's mantissa
      expect(Math.fround(tie)).toBe(tie)
      const even = bits % 2 === 0 ? bits : bits + 1
      expect(f32ToF16Bits(tie)).toBe(even)
      expect(f32ToF16Bits(-tie)).toBe(0x8000 | even)
      const nudge = (hi - lo) / 1024
      expect(f32ToF16Bits(tie - nudge)).toBe(bits)
      expect(f32ToF16Bits(tie + nudge)).toBe(bits + 1)
    }
    expect(f32ToF16Bits(65519.996)).toBe(0x7bff)
    expect(f32ToF16Bits(65520)).toBe(0x7c00) // the tie above the largest half goes to the even infinity
    expect(f32ToF16Bits(2 ** -25)).toBe(0) // the tie between 0 and the smallest subnormal
    expect(f32ToF16Bits(Math.fround(2 ** -25 * (1 + 2 ** -20)))).toBe(1)
    expect(f32ToF16Bits(-Infinity)).toBe(0xfc00)
  })

  it('agrees with a search over every half on random f32 patterns, and encode_f16 agrees bit for bit', () => {
    const random = rng(11)
    const n = 200_000
    const words = Uint32Array.from({ length: n }, () => Math.floor(random() * 2 ** 32))
    // Concentrate half of them where halves live (f32 exponents 100 .. 143).
    for (let i = 0; i < n; i += 2) words[i] = (words[i] & 0x807fffff) | ((100 + Math.floor(random() * 44)) << 23)
    const values = new Float32Array(words.buffer)
    const expected = Uint16Array.from(values, (v) => f16BySearch(v))
    const twin = Uint16Array.from(values, (v) => f32ToF16Bits(v))
    let mismatch = -1
    for (let i = 0; i < n && mismatch < 0; i++) {
      const same = Number.isNaN(values[i]) ? (twin[i] & 0x7fff) === 0x7e00 : twin[i] === expected[i]
      if (!same) mismatch = i
    }
    expect(mismatch, mismatch >= 0 ? `x = ${values[mismatch]}` : '').toBe(-1)
    // The kernel sees the exact bits, NaN signs included: a NaN must come out as sign | 0x7e00.
    h.reset()
    const src = h.put(values)
    const dst = h.alloc(n * 2)
    h.k.encode_f16(src, dst, n)
    const wasm = new Uint16Array(h.memory.buffer.slice(dst, dst + n * 2))
    for (let i = 0; i < n; i++) {
      const want = Number.isNaN(values[i]) ? ((words[i] >>> 16) & 0x8000) | 0x7e00 : twin[i]
      if (wasm[i] !== want) expect(`${i}: ${wasm[i].toString(16)}`).toBe(`${i}: ${want.toString(16)}`)
    }
  })

  it('encode_f16 rounds every tie between neighbouring halves, and the values either side, as the twin does', () => {
    // The kernel rounds without a branch (a carry from 0xfff plus the kept lowest bit): ties, the carry
    // into the exponent and into infinity are where that could differ from the twin's comparisons.
    const values: number[] = [65519.996, 65520, 65504, 2 ** -14, 2 ** -14 * (1 - 2 ** -11)]
    for (let bits = 0; bits < 0x7bff; bits++) {
      const lo = f16ToF32(bits),
        hi = f16ToF32(bits + 1)
      const tie = (lo + hi) / 2
      const nudge = (hi - lo) / 1024
      values.push(
        tie,
        -tie,
        tie - nudge,
        tie + nudge,
        Math.fround(tie * (1 - 2 ** -23)),
        Math.fround(tie * (1 + 2 ** -23)),
      )
    }
    const input = Float32Array.from(values)
    h.reset()
    const src = h.put(input)
    const dst = h.alloc(input.length * 2)
    h.k.encode_f16(src, dst, input.length)
    const wasm = new Uint16Array(h.memory.buffer.slice(dst, dst + input.length * 2))
    const first = input.findIndex((v, i) => wasm[i] !== f32ToF16Bits(v))
    expect(first, first >= 0 ? `x = ${input[first]}: ${wasm[first].toString(16)}` : '').toBe(-1)
  })
})

// ---- quantize -> dequantize error on random data ----

describe('quantize -> dequantize error within each format bound', () => {
  // Max error per block of x (absmax a, f16 scales add 2^-11 relative), and the RMS error relative to
  // RMS(x) expected of Gaussian data (uniform-step error step / sqrt 12 with the step each format implies,
  // given a 32-element block of N(0, 1) has absmax about 2.0 to 2.5 and range about 4 to 5).
  const bounds: Record<QuantType, { maxError: (blockAbsmax: number, subAbsmax: number) => number; rms: number }> = {
    Q8_0: { maxError: (a) => a * (0.5 / 127 + 2 ** -11) * 1.001, rms: 0.01 }, // step a/127
    Q4_0: { maxError: (a) => a * (1 / 8 + 2 ** -11) * 1.001, rms: 0.12 }, // step a/8; -m clamps to 7d: error d
    Q4_K: { maxError: (_a, sub) => sub * 0.25, rms: 0.1 }, // 15 steps over a sub-block's range
    Q5_K: { maxError: (_a, sub) => sub * 0.125, rms: 0.05 }, // 31 steps over a sub-block's range
    Q6_K: { maxError: (a, sub) => sub / 31 + a / 128, rms: 0.03 }, // 63 steps; int8 sub-scales cost d/2 each
  }
  for (const type of TYPES) {
    it(`${type}`, () => {
      const { elements } = QUANT_BLOCKS[type]
      const subBlock = type === 'Q6_K' ? 16 : 32
      const random = rng(99)
      const x = normalish(random, 64 * 256, 0.8, 0) // sum of 4 uniforms: variance 1/3, times 0.8
      const bytes = referenceBytes(type, x)
      expect(wasmBytes(type, x)).toEqual(bytes)
      const y = new Float32Array(x.length)
      dequantizeRow(type, bytes, x.length, y)
      let sumSqErr = 0,
        sumSq = 0
      for (let b = 0; b < x.length; b += elements) {
        let blockAbsmax = 0
        for (let i = b; i < b + elements; i++) blockAbsmax = Math.max(blockAbsmax, Math.abs(x[i]))
        for (let s = b; s < b + elements; s += subBlock) {
          let subAbsmax = 0,
            lo = Infinity,
            hi = -Infinity
          for (let i = s; i < s + subBlock; i++) {
            subAbsmax = Math.max(subAbsmax, Math.abs(x[i]))
            lo = Math.min(lo, x[i])
            hi = Math.max(hi, x[i])
          }
          const bound = bounds[type].maxError(
            blockAbsmax,
            type === 'Q4_K' || type === 'Q5_K' ? hi - Math.min(lo, 0) : subAbsmax,
          )
          for (let i = s; i < s + subBlock; i++) {
            const err = Math.abs(y[i] - x[i])
            if (err > bound) expect(`element ${i}: error ${err}`).toBe(`within ${bound}`)
            sumSqErr += err * err
            sumSq += x[i] * x[i]
          }
        }
      }
      expect(Math.sqrt(sumSqErr / sumSq)).toBeLessThan(bounds[type].rms)
    })
  }
})
