// compressed-tensors' pack_to_int32 layout (element i at bit i·b, LSB first) against hand-computed words,
// and its decoding (q − z) · scale.

import { describe, expect, it } from 'vitest'
import { packColsInt32, packRowsInt32, unpackColsInt32, unpackRowsInt32 } from './bit-fields'
import {
  dequantizeCompressedTensors,
  packCompressedTensorsWeight,
  packCompressedTensorsZeros,
} from './compressed-tensors-pack'

const u32 = (a: Int32Array): number[] => Array.from(a, (w) => w >>> 0)

describe('compressed-tensors pack_to_int32 (element i at bit i·b, LSB first)', () => {
  it('4 bits along a row; signed values are the codes minus 8', () => {
    const signed = [-7, -6, -5, -4, -3, -2, -1, 0]
    const codes = signed.map((s) => s + 8)
    expect(u32(packRowsInt32(codes, 1, 8, 4))).toEqual([0x87654321])
    expect(Array.from(unpackRowsInt32(packRowsInt32(codes, 1, 8, 4), 1, 8, 4), (q) => q - 8)).toEqual(signed)
  })

  it('3 bits: 11 elements need 2 words, element 10 crosses into the second', () => {
    const codes = new Array(11).fill(0)
    codes[10] = 0b110
    codes[0] = 1
    expect(u32(packRowsInt32(codes, 1, 11, 3))).toEqual([0x80000001, 0x1])
  })

  it('zero points pack along dim 0 (the output dimension)', () => {
    // [out = 8, groups = 2]: column 0 holds 0..7, column 1 holds 8 − i… at 4 bits
    const zp = Array.from({ length: 16 }, (_, k) => (k % 2 === 0 ? k / 2 : 15 - (k - 1) / 2))
    const packed = packColsInt32(zp, 8, 2, 4)
    expect(u32(packed)).toEqual([0x76543210, 0x89abcdef])
    expect(Array.from(unpackColsInt32(packed, 8, 2, 4))).toEqual(zp)
  })

  it("packCompressedTensorsZeros takes the quantizer's [groups, out] zeros to the same dim-0 words", () => {
    // The zp above, held [groups = 2, out = 8]: group 0 is 0..7, group 1 is 15..8.
    const zeros = Int32Array.from([0, 1, 2, 3, 4, 5, 6, 7, 15, 14, 13, 12, 11, 10, 9, 8])
    expect(u32(packCompressedTensorsZeros(zeros, 2, 8, 4))).toEqual([0x76543210, 0x89abcdef])
  })
})

describe('dequantizeCompressedTensors', () => {
  it('decodes (q − z) · scale per (row, group), symmetric zero 2^(b−1) when no zero points are stored', () => {
    // 2 outputs × 4 inputs at 4 bits, group size 2: row 0 codes 8, 9, 10, 11; row 1 codes 0, 15, 7, 8.
    const codes = [8, 9, 10, 11, 0, 15, 7, 8]
    const scale = Float32Array.from([0.5, 2, 0.25, 1]) // [out, groups]
    const shape = Int32Array.of(2, 4)
    const packed = packCompressedTensorsWeight(codes, 2, 4, 4)
    const sym = dequantizeCompressedTensors({ packed, scale, zeroPoint: null, shape, gIdx: null }, 4, 2)
    expect(Array.from(sym)).toEqual([0, 0.5, 4, 6, -2, 1.75, -1, 0])
    // Asymmetric, zeros [groups, out] = [[1, 2], [3, 4]] (group 0: row 0 → 1, row 1 → 2).
    const zeroPoint = packCompressedTensorsZeros(Int32Array.from([1, 2, 3, 4]), 2, 2, 4)
    const asym = dequantizeCompressedTensors({ packed, scale, zeroPoint, shape, gIdx: null }, 4, 2)
    expect(Array.from(asym)).toEqual([3.5, 4, 14, 16, -0.5, 3.25, 3, 4])
    // An explicit g_idx overrides i / group_size.
    const swapped = dequantizeCompressedTensors(
      { packed, scale, zeroPoint: null, shape, gIdx: Int32Array.from([1, 1, 0, 0]) },
      4,
      2,
    )
    expect(Array.from(swapped)).toEqual([0, 2, 1, 1.5, -8, 7, -0.25, 0])
  })

  it('rejects a g_idx outside the groups with a format error', () => {
    const packed = packCompressedTensorsWeight([8, 8], 1, 2, 4)
    expect(() =>
      dequantizeCompressedTensors(
        { packed, scale: Float32Array.of(1), zeroPoint: null, shape: Int32Array.of(1, 2), gIdx: Int32Array.of(0, 1) },
        4,
        0,
      ),
    ).toThrow(/group 1, outside 0..0/)
  })
})
