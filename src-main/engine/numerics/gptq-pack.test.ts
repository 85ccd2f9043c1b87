// GPTQ's packed layout against hand-computed words (GPTQModel's qweight/qzeros conventions).

import { describe, expect, it } from 'vitest'
import { packGptqWeight, packGptqZeros, unpackGptqWeight, unpackGptqZeros } from './gptq-pack'

const u32 = (a: Int32Array): number[] => Array.from(a, (w) => w >>> 0)

describe('GPTQ qweight packing (GPTQModel layout, hand-computed words)', () => {
  it('4 bits: 8 inputs × 2 outputs → one word per output column, input j at bits 4j', () => {
    // codes [out, in]
    const codes = Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8, /* out 1 */ 15, 0, 15, 0, 0, 0, 0, 9])
    const q = packGptqWeight(codes, 2, 8, 4)
    expect(u32(q)).toEqual([0x87654321, 0x90000f0f])
    expect(Array.from(unpackGptqWeight(q, 2, 8, 4))).toEqual(Array.from(codes))
  })

  it('2 bits: 16 inputs in one word', () => {
    const codes = new Uint8Array(16)
    codes[0] = 3
    codes[2] = 1
    codes[3] = 2
    codes[15] = 1
    const q = packGptqWeight(codes, 1, 16, 2)
    expect(u32(q)).toEqual([0x40000093])
    expect(Array.from(unpackGptqWeight(q, 1, 16, 2))).toEqual(Array.from(codes))
  })

  it('8 bits: 4 inputs per word, two rows of words along the input dimension', () => {
    const codes = Uint8Array.from([0x12, 0x34, 0x56, 0xff, 1, 0, 0, 0x80])
    const q = packGptqWeight(codes, 1, 8, 8)
    expect(u32(q)).toEqual([0xff563412, 0x80000001])
  })

  it('3 bits: 32 inputs fill 3 words; inputs 10 and 21 straddle words as in GPTQModel', () => {
    // GPTQModel: w0 = x0..x9 << 3k | x10 << 30; w1 = (x10 >> 2) & 1 | x11..x20 << (3k+1) | x21 << 31;
    // w2 = (x21 >> 1) & 3 | x22..x31 << (3k+2)
    const codes = new Uint8Array(32)
    codes[0] = 7
    codes[10] = 0b101
    codes[21] = 0b011
    codes[31] = 6
    const q = packGptqWeight(codes, 1, 32, 3)
    expect(u32(q)).toEqual([0x40000007, 0x80000001, 0xc0000001])
    expect(Array.from(unpackGptqWeight(q, 1, 32, 3))).toEqual(Array.from(codes))
  })

  it('round-trips random codes at every width, with two output columns interleaved', () => {
    for (const bits of [2, 3, 4, 8]) {
      const codes = Uint8Array.from({ length: 3 * 64 }, (_, i) => (i * 2654435761) % 2 ** bits)
      expect(Array.from(unpackGptqWeight(packGptqWeight(codes, 3, 64, bits), 3, 64, bits))).toEqual(Array.from(codes))
    }
  })
})

describe('GPTQ qzeros: v1 stores z − 1, v2 stores z', () => {
  it('symmetric 4 bits: v2 nibbles are 8, v1 nibbles are 7', () => {
    const zeros = new Int32Array(8).fill(8)
    expect(u32(packGptqZeros(zeros, 1, 8, 4, 'gptq_v2'))).toEqual([0x88888888])
    expect(u32(packGptqZeros(zeros, 1, 8, 4, 'gptq'))).toEqual([0x77777777])
  })

  it('v1 at 4 bits subtracts 0x11111111 from the whole word (a zero field borrows), and unpacks back', () => {
    const zeros = Int32Array.from([0, 3, 1, 1, 1, 1, 1, 1])
    const v1 = packGptqZeros(zeros, 1, 8, 4, 'gptq')
    expect(u32(v1)).toEqual([0x11111130 - 0x11111111])
    expect(Array.from(unpackGptqZeros(v1, 1, 8, 4, 'gptq'))).toEqual(Array.from(zeros))
  })

  it('3 bits v1 shifts each field: symmetric zero 4 is stored as 3 in every field', () => {
    const zeros = new Int32Array(32).fill(4)
    expect(u32(packGptqZeros(zeros, 1, 32, 3, 'gptq'))).toEqual([0xdb6db6db, 0xb6db6db6, 0x6db6db6d])
    const asym = Int32Array.from({ length: 64 }, (_, i) => (i * 5) % 8)
    for (const f of ['gptq', 'gptq_v2'] as const) {
      expect(Array.from(unpackGptqZeros(packGptqZeros(asym, 2, 32, 3, f), 2, 32, 3, f))).toEqual(Array.from(asym))
    }
  })

  it('2 and 8 bits v1 round-trip asymmetric zeros including 0', () => {
    for (const bits of [2, 8]) {
      const zeros = Int32Array.from({ length: 3 * 16 }, (_, i) => (i * 7) % 2 ** bits)
      for (const f of ['gptq', 'gptq_v2'] as const) {
        expect(Array.from(unpackGptqZeros(packGptqZeros(zeros, 3, 16, bits, f), 3, 16, bits, f))).toEqual(
          Array.from(zeros),
        )
      }
    }
    expect(u32(packGptqZeros(new Int32Array(4).fill(1), 1, 4, 8, 'gptq'))).toEqual([0])
  })
})
