// Reference twin of kernels/assembly/ggml-dequant-kquants.ts: the low-bit K-quants Q2_K and Q3_K to f32,
// in llama.cpp's dequantize_row_q2_K / q3_K operation order (one f32 rounding per operation).
//
// Both store 256 elements as 2-bit levels, four per byte: element 128h + 32k + l at bits 2k of
// qs[32h + l]. Each 16 elements share a scale (sub-block j = elements 16j .. 16j + 15).

import { readF16 } from './convert'
import { checkDequantSizes } from './ggml-dequant-legacy'

const f32 = Math.fround

export type KQuantType = 'Q2_K' | 'Q3_K'

export const KQUANT_BLOCKS: Readonly<Record<KQuantType, { elements: number; bytes: number }>> = {
  Q2_K: { elements: 256, bytes: 84 }, // u8 scales[16] (scale | min << 4), u8 qs[64], f16 d, f16 dmin
  Q3_K: { elements: 256, bytes: 110 }, // u8 hmask[32], u8 qs[64], u8 scales[12] (6-bit, offset 32), f16 d
}

/** The 6-bit scale (0..63) of Q3_K sub-block j from the 12 packed bytes at `at`. */
export function q3kScale(bytes: Uint8Array, at: number, j: number): number {
  const low = j < 8 ? bytes[at + j] & 0xf : bytes[at + j - 8] >> 4
  return low | (((bytes[at + 8 + (j & 3)] >> (2 * (j >> 2))) & 3) << 4)
}

/** The 2-bit level of element e (0..255) from the qs bytes starting at `qs`. */
function level2(src: Uint8Array, qs: number, e: number): number {
  return (src[qs + 32 * (e >> 7) + (e & 31)] >> (2 * ((e >> 5) & 3))) & 3
}

/** Q2_K: x = (d · sc) · q − dmin · m, with sc and m the low and high nibbles of scales[j]. */
export function dequantizeQ2_K(src: Uint8Array, nblocks: number, dst: Float32Array): void {
  checkDequantSizes('Q2_K', KQUANT_BLOCKS.Q2_K, src, nblocks, dst)
  for (let b = 0; b < nblocks; b++) {
    const at = b * 84
    const d = readF16(src, at + 80)
    const dmin = readF16(src, at + 82)
    for (let j = 0; j < 16; j++) {
      const sc = src[at + j]
      const dl = f32(d * (sc & 0xf))
      const ml = f32(dmin * (sc >> 4))
      for (let i = 0; i < 16; i++) {
        const e = 16 * j + i
        dst[b * 256 + e] = f32(f32(dl * level2(src, at + 16, e)) - ml)
      }
    }
  }
}

/** Q3_K: x = (d · (sc − 32)) · (q − 4 · (1 − h)), h = bit e / 32 of hmask[e % 32]. */
export function dequantizeQ3_K(src: Uint8Array, nblocks: number, dst: Float32Array): void {
  checkDequantSizes('Q3_K', KQUANT_BLOCKS.Q3_K, src, nblocks, dst)
  for (let b = 0; b < nblocks; b++) {
    const at = b * 110
    const d = readF16(src, at + 108)
    for (let j = 0; j < 16; j++) {
      const dl = f32(d * (q3kScale(src, at + 96, j) - 32))
      for (let i = 0; i < 16; i++) {
        const e = 16 * j + i
        const high = (src[at + (e & 31)] >> (e >> 5)) & 1
        dst[b * 256 + e] = f32(dl * (level2(src, at + 32, e) - (high ? 0 : 4)))
      }
    }
  }
}
