// Reference twin of kernels/assembly/ggml-dequant-ternary.ts: the ternary types TQ1_0 and TQ2_0 to f32,
// in llama.cpp's dequantize_row_tq1_0 / tq2_0 order: x = (t − 1) · d for a trit t in {0, 1, 2}.
// Element order is documented with the quantizers in ./ggml-quantize-ternary.

import { readF16 } from './convert'
import { checkDequantSizes } from './ggml-dequant-legacy'

const f32 = Math.fround

export type TernaryType = 'TQ1_0' | 'TQ2_0'

export const TERNARY_BLOCKS: Readonly<Record<TernaryType, { elements: number; bytes: number }>> = {
  TQ1_0: { elements: 256, bytes: 54 }, // u8 qs[48] (5 trits each), u8 qh[4] (4 trits each), f16 d
  TQ2_0: { elements: 256, bytes: 66 }, // u8 qs[64] (4 two-bit trits each), f16 d
}

const POW3 = [1, 3, 9, 27, 81]

/** Trit n of a base-3 packed byte: the top of (byte · 3^n mod 256) · 3 / 256. */
export function unpackTrit(byte: number, n: number): number {
  return (((byte * POW3[n]) & 0xff) * 3) >> 8
}

export function dequantizeTQ1_0(src: Uint8Array, nblocks: number, dst: Float32Array): void {
  checkDequantSizes('TQ1_0', TERNARY_BLOCKS.TQ1_0, src, nblocks, dst)
  for (let b = 0; b < nblocks; b++) {
    const at = b * 54
    const d = readF16(src, at + 52)
    const out = b * 256
    for (let n = 0; n < 5; n++) {
      for (let m = 0; m < 32; m++) dst[out + 32 * n + m] = f32((unpackTrit(src[at + m], n) - 1) * d)
    }
    for (let n = 0; n < 5; n++) {
      for (let m = 0; m < 16; m++) dst[out + 160 + 16 * n + m] = f32((unpackTrit(src[at + 32 + m], n) - 1) * d)
    }
    for (let n = 0; n < 4; n++) {
      for (let j = 0; j < 4; j++) dst[out + 240 + 4 * n + j] = f32((unpackTrit(src[at + 48 + j], n) - 1) * d)
    }
  }
}

export function dequantizeTQ2_0(src: Uint8Array, nblocks: number, dst: Float32Array): void {
  checkDequantSizes('TQ2_0', TERNARY_BLOCKS.TQ2_0, src, nblocks, dst)
  for (let b = 0; b < nblocks; b++) {
    const at = b * 66
    const d = readF16(src, at + 64)
    for (let half = 0; half < 2; half++) {
      for (let n = 0; n < 4; n++) {
        for (let m = 0; m < 32; m++) {
          const t = (src[at + 32 * half + m] >> (2 * n)) & 3
          dst[b * 256 + 128 * half + 32 * n + m] = f32((t - 1) * d)
        }
      }
    }
  }
}
