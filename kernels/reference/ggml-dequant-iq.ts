// Reference twin of kernels/assembly/ggml-dequant-iq.ts: the non-linear 4-bit types IQ4_NL and IQ4_XS to
// f32, in llama.cpp's dequantize_row_iq4_nl / iq4_xs operation order. A 4-bit level indexes a fixed grid
// of 16 int8 values (kvalues_iq4nl in ggml-common.h) instead of being the value itself.

import { readF16 } from './convert'
import { checkDequantSizes } from './ggml-dequant-legacy'

const f32 = Math.fround

export type IqType = 'IQ4_NL' | 'IQ4_XS'

export const IQ_BLOCKS: Readonly<Record<IqType, { elements: number; bytes: number }>> = {
  IQ4_NL: { elements: 32, bytes: 18 }, // f16 d, u8 qs[16]
  IQ4_XS: { elements: 256, bytes: 136 }, // f16 d, u16 scales_h, u8 scales_l[4], u8 qs[128]
}

/** The IQ4 grid, ascending (llama.cpp's kvalues_iq4nl). */
export const IQ4_VALUES: readonly number[] = [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113]

/** 16 qs bytes at `qs` -> 32 values d · grid[level]: byte j holds element j (low nibble) and j + 16 (high). */
function decodeGroup(src: Uint8Array, qs: number, d: number, dst: Float32Array, out: number): void {
  for (let j = 0; j < 16; j++) {
    const byte = src[qs + j]
    dst[out + j] = f32(d * IQ4_VALUES[byte & 0xf])
    dst[out + j + 16] = f32(d * IQ4_VALUES[byte >> 4])
  }
}

/** IQ4_NL: x = d · grid[q]. */
export function dequantizeIQ4_NL(src: Uint8Array, nblocks: number, dst: Float32Array): void {
  checkDequantSizes('IQ4_NL', IQ_BLOCKS.IQ4_NL, src, nblocks, dst)
  for (let b = 0; b < nblocks; b++) decodeGroup(src, b * 18 + 2, readF16(src, b * 18), dst, b * 32)
}

/** The 6-bit scale (0..63) of IQ4_XS sub-block ib from the block at `at`. */
export function iq4xsScale(src: Uint8Array, at: number, ib: number): number {
  const scalesH = src[at + 2] | (src[at + 3] << 8)
  return ((src[at + 4 + (ib >> 1)] >> (4 * (ib & 1))) & 0xf) | (((scalesH >> (2 * ib)) & 3) << 4)
}

/** IQ4_XS: x = (d · (ls − 32)) · grid[q], one 6-bit ls per 32 elements. */
export function dequantizeIQ4_XS(src: Uint8Array, nblocks: number, dst: Float32Array): void {
  checkDequantSizes('IQ4_XS', IQ_BLOCKS.IQ4_XS, src, nblocks, dst)
  for (let b = 0; b < nblocks; b++) {
    const at = b * 136
    const d = readF16(src, at)
    for (let ib = 0; ib < 8; ib++) {
      decodeGroup(src, at + 8 + 16 * ib, f32(d * (iq4xsScale(src, at, ib) - 32)), dst, b * 256 + 32 * ib)
    }
  }
}
