import { describe, expect, it, beforeAll } from 'vitest'
import {
  DEQUANT_BLOCKS,
  dequantizeQ4_0,
  dequantizeQ4_K,
  dequantizeQ6_K,
  dequantizeQ8_0,
  dequantizeRow,
  type DequantType,
} from '../reference/ggml-dequant'
import { firstBitDifference, loadKernels, rng, type KernelHarness } from '../testing/kernel-harness'

let h: KernelHarness
beforeAll(async () => {
  h = await loadKernels()
})

// fp16 bit patterns of exact small values.
const F16_HALF = 0x3800
const F16_QUARTER = 0x3400
const F16_ONE = 0x3c00

function setF16(block: Uint8Array, at: number, bits: number): void {
  block[at] = bits & 0xff
  block[at + 1] = bits >> 8
}

describe('reference dequantization against blocks built by hand from the documented layouts', () => {
  it('Q8_0: x = q * d', () => {
    const block = new Uint8Array(34)
    setF16(block, 0, F16_QUARTER)
    const q = Int8Array.from({ length: 32 }, (_, j) => j * 8 - 128) // -128 .. 120
    block.set(new Uint8Array(q.buffer), 2)
    const out = new Float32Array(32)
    dequantizeQ8_0(block, 1, out)
    expect(Array.from(out)).toEqual(Array.from(q, (v) => v * 0.25))
  })

  it('Q4_0: byte j holds element j (low nibble) and j + 16 (high); x = d * (q - 8)', () => {
    const block = new Uint8Array(18)
    setF16(block, 0, F16_HALF)
    for (let j = 0; j < 16; j++) block[2 + j] = j | ((15 - j) << 4)
    const out = new Float32Array(32)
    dequantizeQ4_0(block, 1, out)
    for (let j = 0; j < 16; j++) {
      expect(out[j]).toBe(0.5 * (j - 8))
      expect(out[j + 16]).toBe(0.5 * (15 - j - 8))
    }
  })

  it('Q4_K: x = d * scale * q - dmin * min, with 6-bit scales/mins packed into 12 bytes', () => {
    const scales = [1, 2, 3, 4, 17, 33, 50, 63]
    const mins = [0, 5, 10, 20, 40, 48, 60, 63]
    const block = new Uint8Array(144)
    setF16(block, 0, F16_ONE) // d
    setF16(block, 2, F16_HALF) // dmin
    // Packing, from the layout: sub-blocks 0-3 use the low 6 bits of bytes j (scale) and j+4 (min);
    // sub-blocks 4-7 put their low 4 bits in byte j+4 (scale low nibble, min high nibble) and their
    // top 2 bits in the top bits of byte j-4 (scale) and byte j (min).
    const packed = block.subarray(4, 16)
    for (let j = 0; j < 4; j++) {
      packed[j] = scales[j] | ((scales[j + 4] >> 4) << 6)
      packed[j + 4] = mins[j] | ((mins[j + 4] >> 4) << 6)
      packed[j + 8] = (scales[j + 4] & 15) | ((mins[j + 4] & 15) << 4)
    }
    const random = rng(5)
    const q = Array.from({ length: 256 }, () => Math.floor(random() * 16))
    // Element 64g + 32s + l is sub-block 2g + s, stored in byte 32g + l (s = 0 low nibble, 1 high).
    for (let g = 0; g < 4; g++) {
      for (let l = 0; l < 32; l++) block[16 + 32 * g + l] = q[64 * g + l] | (q[64 * g + 32 + l] << 4)
    }
    const out = new Float32Array(256)
    dequantizeQ4_K(block, 1, out)
    for (let e = 0; e < 256; e++) {
      const sub = e >> 5
      expect(out[e]).toBe(1 * scales[sub] * q[e] - 0.5 * mins[sub]) // exact in f32 for these values
    }
  })

  it('Q6_K: x = d * scale * (q - 32), q split into 4 low bits (ql) and 2 high bits (qh)', () => {
    const scales = [-3, 1, 2, -128, 127, 5, -7, 9, 11, -13, 15, 17, -19, 21, 23, -25]
    const block = new Uint8Array(210)
    setF16(block, 208, F16_HALF)
    block.set(new Uint8Array(Int8Array.from(scales).buffer), 192)
    const random = rng(9)
    const q = Array.from({ length: 256 }, () => Math.floor(random() * 64))
    // Element 128h + 32k + l: its low 4 bits are the low (k = 0, 1) or high (k = 2, 3) nibble of
    // ql[64h + l + 32 * (k & 1)]; its high 2 bits are bits 2k, 2k+1 of qh[32h + l]; scale 8h + l/16 + 2k.
    for (let e = 0; e < 256; e++) {
      const half = e >> 7,
        k = (e >> 5) & 3,
        l = e & 31
      const qlAt = 64 * half + l + 32 * (k & 1)
      block[qlAt] |= (q[e] & 15) << (k >= 2 ? 4 : 0)
      block[128 + 32 * half + l] |= (q[e] >> 4) << (2 * k)
    }
    const out = new Float32Array(256)
    dequantizeQ6_K(block, 1, out)
    for (let e = 0; e < 256; e++) {
      const half = e >> 7,
        k = (e >> 5) & 3,
        l = e & 31
      const scale = scales[8 * half + (l >> 4) + 2 * k]
      expect(out[e]).toBe(0.5 * scale * (q[e] - 32))
    }
  })

  it('dequantizeRow dispatches by type and refuses partial blocks and short buffers', () => {
    const block = new Uint8Array(18)
    setF16(block, 0, F16_ONE)
    block.fill(0x99, 2)
    const out = new Float32Array(32)
    dequantizeRow('Q4_0', block, 32, out)
    expect(out[0]).toBe(1)
    expect(out[31]).toBe(1)
    expect(() => dequantizeRow('Q4_0', block, 31, out)).toThrow(RangeError)
    expect(() => dequantizeRow('Q4_0', block, 64, new Float32Array(64))).toThrow(/bytes/)
    expect(() => dequantizeRow('Q8_0', new Uint8Array(34), 32, new Float32Array(16))).toThrow(/destination/)
    expect(() => dequantizeRow('Q2_K' as DequantType, block, 32, out)).toThrow(/unsupported/)
  })
})

/** Random blocks whose fp16 scales are finite (exponent field below 31). */
function randomBlocks(type: DequantType, nblocks: number, seed: number): Uint8Array {
  const { bytes } = DEQUANT_BLOCKS[type]
  const random = rng(seed)
  const data = Uint8Array.from({ length: nblocks * bytes }, () => Math.floor(random() * 256))
  const scaleOffsets = type === 'Q4_K' || type === 'Q5_K' ? [0, 2] : type === 'Q6_K' ? [208] : [0]
  for (let b = 0; b < nblocks; b++) {
    for (const at of scaleOffsets) {
      const exponent = Math.floor(random() * 31) // 0 (subnormal) .. 30
      const bits = (random() < 0.5 ? 0x8000 : 0) | (exponent << 10) | Math.floor(random() * 1024)
      setF16(data, b * bytes + at, bits)
    }
  }
  return data
}

describe('WASM dequantization against the reference twins', () => {
  const kernels: Record<
    DequantType,
    'dequant_q8_0' | 'dequant_q4_0' | 'dequant_q4_k' | 'dequant_q5_k' | 'dequant_q6_k'
  > = {
    Q8_0: 'dequant_q8_0',
    Q4_0: 'dequant_q4_0',
    Q4_K: 'dequant_q4_k',
    Q5_K: 'dequant_q5_k',
    Q6_K: 'dequant_q6_k',
  }
  for (const type of Object.keys(kernels) as DequantType[]) {
    it(`${kernels[type]}: random blocks, bit-exact, nothing written past the last block`, () => {
      const { elements } = DEQUANT_BLOCKS[type]
      for (const [nblocks, misalign] of [
        [1, 0],
        [3, 1],
        [17, 2],
        [64, 3],
      ]) {
        const data = randomBlocks(type, nblocks, nblocks * 31 + elements)
        const expected = new Float32Array(nblocks * elements)
        dequantizeRow(type, data, nblocks * elements, expected)
        h.reset()
        const src = h.put(data, misalign)
        const dst = h.alloc((nblocks * elements + 4) * 4)
        h.k[kernels[type]](src, dst, nblocks)
        expect(firstBitDifference(h.f32(dst, nblocks * elements), expected)).toBe(-1)
        expect(h.u32(dst + nblocks * elements * 4, 4).every((w) => w === 0xcdcdcdcd)).toBe(true)
      }
    })
  }

  it('zero blocks write nothing', () => {
    h.reset()
    const dst = h.alloc(16)
    h.k.dequant_q4_k(h.alloc(144), dst, 0)
    expect(h.u32(dst, 4).every((w) => w === 0xcdcdcdcd)).toBe(true)
  })
})
