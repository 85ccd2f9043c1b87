// The GGUF block types added beside the first five: Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, IQ4_NL, IQ4_XS, TQ1_0, TQ2_0.
// - llama-quantize's own output (../shared golden files): the reference twins and the WASM kernels
//   reproduce every quantized tensor byte for byte, and decoding the golden blocks (twin and SIMD, bit for
//   bit) gives values close to the F32 source.
// - The WASM kernels against the twins on hostile data (zeros, subnormals, NaN/Inf, outliers, ties,
//   misaligned buffers), byte- and bit-exact, never writing past their output.
// - The twins' decoders against blocks built by hand from the documented layouts.

import { beforeAll, describe, expect, it } from 'vitest'
import { BLOCK_GEOMETRY, dequantizeBlocks, type BlockType } from '../reference/ggml-dequant-all'
import { quantizeBlocks } from '../reference/ggml-quantize-all'
import { QUANT_SCRATCH_BYTES, type KernelName } from '../host/exports'
import { openModelFiles } from '../../src-main/engine/formats/open'
import { readTensorBytes, readTensorF32 } from '../../src-main/engine/formats/read'
import { hasShared, shared, SKIP_SHARED } from '../../src-main/engine/testing/shared-data'
import { firstBitDifference, loadKernels, normalish, rng, type KernelHarness } from '../testing/kernel-harness'

let h: KernelHarness
beforeAll(async () => {
  h = await loadKernels()
})

type NewType = 'Q4_1' | 'Q5_0' | 'Q5_1' | 'Q2_K' | 'Q3_K' | 'IQ4_NL' | 'IQ4_XS' | 'TQ1_0' | 'TQ2_0'
const TYPES: readonly NewType[] = ['Q4_1', 'Q5_0', 'Q5_1', 'Q2_K', 'Q3_K', 'IQ4_NL', 'IQ4_XS', 'TQ1_0', 'TQ2_0']
const lower = (t: NewType) => t.toLowerCase() as Lowercase<NewType>
const quantizeKernel = (t: NewType) => `quantize_${lower(t)}` as KernelName
const dequantKernel = (t: NewType) => `dequant_${lower(t)}` as KernelName

function referenceBytes(type: BlockType, x: Float32Array): Uint8Array {
  const out = new Uint8Array((x.length / BLOCK_GEOMETRY[type].elements) * BLOCK_GEOMETRY[type].bytes)
  quantizeBlocks(type, x, x.length, out)
  return out
}

type Call4 = (a: number, b: number, c: number, d: number) => void
const kernel = (name: KernelName) => (h.k as unknown as Record<KernelName, Call4>)[name]

/** The kernel's bytes for x; checks that nothing is written past the last block (or the scratch). */
function wasmBytes(type: NewType, x: Float32Array, srcMisalign = 0, dstMisalign = 0): Uint8Array {
  const nblocks = x.length / BLOCK_GEOMETRY[type].elements
  const bytes = nblocks * BLOCK_GEOMETRY[type].bytes
  h.reset()
  const src = h.put(x, srcMisalign)
  const dst = h.alloc(bytes + 16, dstMisalign)
  const scratch = h.alloc(QUANT_SCRATCH_BYTES + 16, 3)
  kernel(quantizeKernel(type))(src, dst, nblocks, scratch)
  expect(
    h.u8(dst + bytes, 16).every((b) => b === 0xcd),
    `${type}: bytes written past the output`,
  ).toBe(true)
  expect(
    h.u8(scratch + QUANT_SCRATCH_BYTES, 16).every((b) => b === 0xcd),
    `${type}: bytes written past the scratch`,
  ).toBe(true)
  expect(
    Array.from(h.f32(src, x.length)).every((v, i) => Object.is(v, x[i]) || (Number.isNaN(v) && Number.isNaN(x[i]))),
  ).toBe(true)
  return h.u8(dst, bytes).slice()
}

function wasmDecode(type: NewType, bytes: Uint8Array, misalign = 0): Float32Array {
  const { elements, bytes: blockBytes } = BLOCK_GEOMETRY[type]
  const nblocks = bytes.length / blockBytes
  h.reset()
  const src = h.put(bytes, misalign)
  const dst = h.alloc(nblocks * elements * 4 + 16)
  kernel(dequantKernel(type))(src, dst, nblocks, 0)
  expect(
    h.u8(dst + nblocks * elements * 4, 16).every((b) => b === 0xcd),
    `${type}: values written past the output`,
  ).toBe(true)
  return h.f32(dst, nblocks * elements).slice()
}

function referenceDecode(type: BlockType, bytes: Uint8Array): Float32Array {
  const n = (bytes.length / BLOCK_GEOMETRY[type].bytes) * BLOCK_GEOMETRY[type].elements
  const out = new Float32Array(n)
  dequantizeBlocks(type, bytes, n, out)
  return out
}

/** '' when equal, else where the first differing block is and both versions of it. */
function firstBlockDifference(type: BlockType, got: Uint8Array, want: Uint8Array): string {
  if (got.length !== want.length) return `${got.length} bytes, expected ${want.length}`
  const size = BLOCK_GEOMETRY[type].bytes
  for (let i = 0; i < want.length; i++) {
    if (got[i] === want[i]) continue
    const block = Math.floor(i / size)
    const part = (a: Uint8Array) => Array.from(a.subarray(block * size, (block + 1) * size)).join(',')
    return `block ${block} (byte ${i % size}) differs:\n  got  ${part(got)}\n  want ${part(want)}`
  }
  return ''
}

if (!hasShared) console.log(`[kernels/ggml-more-types.test] golden check: ${SKIP_SHARED}`)

/** Relative RMS error of the golden decode against the F32 source, per type (loose: the data is N(0, 0.02²)). */
const GOLDEN_RMS: Record<NewType, number> = {
  Q4_1: 0.12,
  Q5_0: 0.06,
  Q5_1: 0.06,
  Q2_K: 0.45,
  Q3_K: 0.25,
  IQ4_NL: 0.12,
  IQ4_XS: 0.12,
  TQ1_0: 0.9,
  TQ2_0: 0.9,
}

describe.skipIf(!hasShared)("llama.cpp's quantizations of small-llama (llama-quantize --pure), byte for byte", () => {
  const golden = (name: string) => shared('reference', 'gguf-golden', `small-llama-${name}.gguf`)
  for (const type of TYPES) {
    it(`${type}: every 2-D weight, reference and WASM; the golden blocks decode alike in both`, async () => {
      const source = await openModelFiles(golden('f32'))
      const target = await openModelFiles(golden(type))
      const weights = source.tensors.filter((t) => t.shape.length === 2)
      expect(weights.length).toBe(16)
      let sumSqErr = 0,
        sumSq = 0
      for (const entry of weights) {
        const quantized = target.tensors.find((t) => t.name === entry.name)
        expect(quantized?.dtype, entry.name).toBe(type)
        const want = await readTensorBytes(quantized!, 0, quantized!.byteLength)
        const x = await readTensorF32(entry)
        expect(firstBlockDifference(type, referenceBytes(type, x), want), `reference, ${entry.name}`).toBe('')
        expect(firstBlockDifference(type, wasmBytes(type, x), want), `WASM, ${entry.name}`).toBe('')
        const decoded = referenceDecode(type, want)
        expect(firstBitDifference(wasmDecode(type, want, 1), decoded), `decode, ${entry.name}`).toBe(-1)
        for (let i = 0; i < x.length; i++) {
          sumSqErr += (decoded[i] - x[i]) ** 2
          sumSq += x[i] ** 2
        }
      }
      expect(Math.sqrt(sumSqErr / sumSq)).toBeLessThan(GOLDEN_RMS[type])
    })
  }
})

// ---- hostile data ----

const SUBNORMAL = 2 ** -140

function hostileCases(): Array<[string, Float32Array]> {
  const random = rng(43)
  const block = (f: (i: number) => number) => Float32Array.from({ length: 256 }, (_, i) => f(i))
  const gauss = () => normalish(random, 1)[0]
  return [
    ['all zero', block(() => 0)],
    ['negative zeros', block(() => -0)],
    ['zeros of both signs', block((i) => (i % 3 ? 0 : -0))],
    ['constant positive', block(() => 0.75)],
    ['constant negative', block(() => -3)],
    ['negative only', block(() => -Math.abs(gauss()) - 0.01)],
    ['positive only', block(() => Math.abs(gauss()) + 0.01)],
    ['one huge outlier', block((i) => (i === 77 ? 1e4 : gauss() * 0.01))],
    ['one huge negative outlier per 32', block((i) => (i % 32 === 5 ? -500 : gauss()))],
    ['subnormals', block(() => gauss() * SUBNORMAL)],
    ['mixed subnormal and normal', block((i) => (i < 128 ? gauss() * SUBNORMAL : gauss() * 1e-30))],
    ['tiny scale (f16 underflow)', block(() => gauss() * 1e-9)],
    ['huge scale (f16 overflow)', block(() => gauss() * 1e7)],
    ['one quiet sub-block of 32', block((i) => (i < 32 ? gauss() * 1e-4 : gauss()))],
    ['one quiet sub-block of 16', block((i) => (i >= 48 && i < 64 ? gauss() * 1e-5 : gauss()))],
    [
      'alternating zero and quiet sub-blocks',
      block((i) => ((i >> 4) % 2 ? 0 : (i >> 5) % 3 ? gauss() : gauss() * 1e-3)),
    ],
    ['exact ties for the rounding', block((i) => ((i % 17) - 8) * 0.5)],
    ['ternary already', block((i) => ((i * 7) % 3) - 1)],
    ['two levels', block((i) => (i % 2 ? 1 : -1))],
    [
      'NaN and infinities',
      block((i) => (i % 41 === 3 ? NaN : i % 53 === 7 ? Infinity : i % 59 === 11 ? -Infinity : gauss())),
    ],
    ['NaN last in each 32', block((i) => (i % 32 === 31 ? NaN : gauss()))],
    ['all NaN', block(() => NaN)],
    // The K-quant fits run four sub-blocks per SIMD vector: one odd sub-block must not disturb its neighbours.
    ['one NaN in one sub-block', block((i) => (i === 200 ? NaN : gauss()))],
    ['one infinity in one sub-block', block((i) => (i === 100 ? -Infinity : gauss()))],
    ['one huge sub-block beside small ones', block((i) => (i >= 160 && i < 192 ? gauss() * 1e30 : gauss() * 1e-3))],
    ['largest finite', block((i) => (i % 2 ? 3.4028235e38 : -3.4028235e38 * random()))],
  ]
}

describe('WASM kernels against the reference twins', () => {
  for (const type of TYPES) {
    it(`${quantizeKernel(type)} / ${dequantKernel(type)}: hostile blocks, byte- and bit-exact`, () => {
      for (const [name, x] of hostileCases()) {
        const want = referenceBytes(type, x)
        expect(firstBlockDifference(type, wasmBytes(type, x), want), name).toBe('')
        expect(firstBitDifference(wasmDecode(type, want), referenceDecode(type, want)), name).toBe(-1)
      }
    })

    it(`${quantizeKernel(type)} / ${dequantKernel(type)}: random data and random bytes, several sizes, misaligned`, () => {
      const random = rng(11 + type.length)
      const { elements, bytes } = BLOCK_GEOMETRY[type]
      for (const [nblocks, scale, misalign] of [
        [1, 1, 0],
        [3, 0.02, 4],
        [17, 1e-3, 5],
        [40, 50, 12],
      ] as const) {
        const gaussian = normalish(random, nblocks * elements, scale)
        const heavy = gaussian.map((v) => (v * v * v) / (scale * scale))
        for (const x of [gaussian, heavy]) {
          expect(firstBlockDifference(type, wasmBytes(type, x, misalign, misalign + 1), referenceBytes(type, x))).toBe(
            '',
          )
        }
        // Arbitrary bytes (any scale bits, NaN and Inf included) must decode alike.
        const noise = Uint8Array.from({ length: nblocks * bytes }, () => Math.floor(random() * 256))
        expect(firstBitDifference(wasmDecode(type, noise, misalign), referenceDecode(type, noise))).toBe(-1)
      }
    })
  }

  it('zero blocks write nothing', () => {
    for (const type of TYPES) {
      expect(wasmBytes(type, new Float32Array(0)).length).toBe(0)
      expect(wasmDecode(type, new Uint8Array(0)).length).toBe(0)
    }
  })
})

// ---- quantize -> dequantize error on random data ----

describe('quantize -> dequantize error within each format bound', () => {
  // RMS error relative to RMS(x) for Gaussian-like data: about step / sqrt(12) with the step each format
  // implies (16 levels over a 32-block's range for Q4_1, 4 levels per 16 for Q2_K, 3 for the ternary types).
  const rms: Record<NewType, number> = {
    Q4_1: 0.1,
    Q5_0: 0.06,
    Q5_1: 0.05,
    Q2_K: 0.4,
    Q3_K: 0.22,
    IQ4_NL: 0.1,
    IQ4_XS: 0.1,
    TQ1_0: 0.8,
    TQ2_0: 0.8,
  }
  for (const type of TYPES) {
    it(type, () => {
      const x = normalish(rng(99), 64 * 256, 0.8)
      const y = referenceDecode(type, referenceBytes(type, x))
      let sumSqErr = 0,
        sumSq = 0
      for (let i = 0; i < x.length; i++) {
        sumSqErr += (y[i] - x[i]) ** 2
        sumSq += x[i] ** 2
      }
      expect(Math.sqrt(sumSqErr / sumSq)).toBeLessThan(rms[type])
      // Ternary weights (what BitNet stores) survive TQ1_0 / TQ2_0 exactly, up to the scale.
      if (type === 'TQ1_0' || type === 'TQ2_0') {
        const t = Float32Array.from({ length: 512 }, (_, i) => 0.5 * (((((i * 7) % 3) + 3) % 3) - 1))
        expect(Array.from(referenceDecode(type, referenceBytes(type, t)))).toEqual(Array.from(t))
      }
    })
  }
})

// ---- the twins' decoders against hand-built blocks ----

const F16_HALF = 0x3800
const F16_QUARTER = 0x3400
const F16_TWO = 0x4000
const F16_MINUS_ONE = 0xbc00
const IQ4 = [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113]

function setF16(block: Uint8Array, at: number, bits: number): void {
  block[at] = bits & 0xff
  block[at + 1] = bits >> 8
}

describe('reference dequantization against blocks built by hand', () => {
  it('Q4_1: x = d·q + m; Q5_0: x = d·(q − 16); Q5_1: x = d·q + m, bit 4 of element j at bit j of qh', () => {
    const q41 = new Uint8Array(20)
    setF16(q41, 0, F16_HALF)
    setF16(q41, 2, F16_MINUS_ONE)
    for (let j = 0; j < 16; j++) q41[4 + j] = j | ((15 - j) << 4)
    const a = referenceDecode('Q4_1', q41)
    for (let j = 0; j < 16; j++) {
      expect(a[j]).toBe(0.5 * j - 1)
      expect(a[j + 16]).toBe(0.5 * (15 - j) - 1)
    }
    const q50 = new Uint8Array(22)
    setF16(q50, 0, F16_QUARTER)
    q50[2] = 0b101
    q50[5] = 0x80 // bits 0, 2 (elements 0, 2) and 31 (element 31)
    for (let j = 0; j < 16; j++) q50[6 + j] = 3 | (9 << 4)
    const b = referenceDecode('Q5_0', q50)
    expect(b[0]).toBe(0.25 * (19 - 16))
    expect(b[1]).toBe(0.25 * (3 - 16))
    expect(b[2]).toBe(0.25 * 3)
    expect(b[16]).toBe(0.25 * (9 - 16))
    expect(b[31]).toBe(0.25 * (25 - 16))
    const q51 = new Uint8Array(24)
    setF16(q51, 0, F16_TWO)
    setF16(q51, 2, F16_HALF)
    q51[4 + 2] = 0x01 // bit 16: element 16
    q51[8] = 0xff
    const c = referenceDecode('Q5_1', q51)
    expect(c[0]).toBe(2 * 15 + 0.5)
    expect(c[16]).toBe(2 * 31 + 0.5)
    expect(c[1]).toBe(0.5)
  })

  it('Q2_K: x = d·sc·q − dmin·m per 16; Q3_K: x = d·(sc − 32)·(q − 4 + 4h)', () => {
    const q2 = new Uint8Array(84)
    setF16(q2, 80, F16_HALF)
    setF16(q2, 82, F16_QUARTER)
    for (let j = 0; j < 16; j++) q2[j] = (j & 0xf) | (((15 - j) & 0xf) << 4)
    q2[16 + 5] = 0b11_10_01_00 // element 5 -> 0, 37 -> 1, 69 -> 2, 101 -> 3
    const a = referenceDecode('Q2_K', q2)
    const exp2 = (e: number, q: number) => 0.5 * (e >> 4) * q - 0.25 * (15 - (e >> 4))
    expect(a[5]).toBe(exp2(5, 0))
    expect(a[37]).toBe(exp2(37, 1))
    expect(a[69]).toBe(exp2(69, 2))
    expect(a[101]).toBe(exp2(101, 3))
    const q3 = new Uint8Array(110)
    setF16(q3, 108, F16_QUARTER)
    // Sub-block 0 scale 40 (low nibble 8 in scales[0], high bits 2 at bits 0-1 of scales[8]); sub-block 9: 20.
    q3[96] = 8
    q3[96 + 8] = 2
    q3[96 + 1] |= 4 << 4
    q3[96 + 9] |= 1 << 4
    q3[32 + 3] = 0b10 // element 3: q = 2
    q3[3] = 1 // element 3: h = 1 (bit 0 of hmask[3])
    q3[32 + 16 + 2] = 0b11 << 0 // element 18 (sub-block 1, scale 0 - 32): q = 3, h = 0
    q3[32 + 16 + 4] = 0b01 << 0 // element 20
    const b = referenceDecode('Q3_K', q3)
    expect(b[3]).toBe(0.25 * (40 - 32) * 2)
    expect(b[0]).toBe(0.25 * (40 - 32) * -4)
    expect(b[18]).toBe(0.25 * -32 * (3 - 4))
    expect(b[150]).toBe(0.25 * (20 - 32) * -4) // sub-block 9, level 0, h = 0
  })

  it('IQ4_NL: x = d·grid[q]; IQ4_XS: x = d·(ls − 32)·grid[q] with ls from scales_l and scales_h', () => {
    const nl = new Uint8Array(18)
    setF16(nl, 0, F16_HALF)
    for (let j = 0; j < 16; j++) nl[2 + j] = j | ((15 - j) << 4)
    const a = referenceDecode('IQ4_NL', nl)
    for (let j = 0; j < 16; j++) {
      expect(a[j]).toBe(0.5 * IQ4[j])
      expect(a[j + 16]).toBe(0.5 * IQ4[15 - j])
    }
    const xs = new Uint8Array(136)
    setF16(xs, 0, F16_QUARTER)
    xs[4 + 1] = 0x5 << 4 // sub-block 3: low nibble 5
    xs[2] = 0b11 << 6 // sub-block 3: high bits 3 -> ls = 53
    xs[8 + 3 * 16 + 2] = 0x0e // sub-block 3, element 2 -> grid[14]; element 18 -> grid[0]
    const b = referenceDecode('IQ4_XS', xs)
    expect(b[96 + 2]).toBe(0.25 * (53 - 32) * IQ4[14])
    expect(b[96 + 18]).toBe(0.25 * (53 - 32) * IQ4[0])
    expect(b[0]).toBe(0.25 * -32 * IQ4[0]) // ls = 0
  })

  it('TQ2_0: trit t at 2 bits; TQ1_0: five base-3 trits per byte scaled by 256/243', () => {
    const t2 = new Uint8Array(66)
    setF16(t2, 64, F16_TWO)
    t2[32 + 7] = 0b00_01_10_00 // elements 128 + 7 (t 0), 160 + 7 (t 2), 192 + 7 (t 1), 224 + 7 (t 0)
    const a = referenceDecode('TQ2_0', t2)
    expect([a[135], a[167], a[199], a[231]]).toEqual([-2, 2, 0, -2])
    // TQ1_0 byte for trits (2, 0, 1, 2, 1): q = 2·81 + 0·27 + 1·9 + 2·3 + 1 = 178, byte = ceil(178·256/243) = 188.
    const t1 = new Uint8Array(54)
    setF16(t1, 52, F16_HALF)
    t1[4] = 188
    const b = referenceDecode('TQ1_0', t1)
    expect([b[4], b[36], b[68], b[100], b[132]]).toEqual([0.5, -0.5, 0, 0.5, 0])
    // qh[1] for trits (1, 2, 0, 0): q = (1·27 + 2·9) · 3 = 135, byte = ceil(135·256/243) = 143; elements 241 + 4n.
    t1[49] = 143
    const c = referenceDecode('TQ1_0', t1)
    expect([c[241], c[245], c[249], c[253]]).toEqual([0, 0.5, -0.5, -0.5])
  })

  it('refuses partial blocks, short buffers and unknown types', () => {
    expect(() => quantizeBlocks('Q2_K', new Float32Array(255), 255, new Uint8Array(84))).toThrow(RangeError)
    expect(() => quantizeBlocks('IQ4_NL', new Float32Array(64), 64, new Uint8Array(18))).toThrow(/destination/)
    expect(() => dequantizeBlocks('TQ1_0', new Uint8Array(53), 256, new Float32Array(256))).toThrow(/source/)
    expect(() => dequantizeBlocks('IQ2_XXS' as BlockType, new Uint8Array(66), 256, new Float32Array(256))).toThrow(
      /unsupported/,
    )
  })
})
