// Reference twin of kernels/assembly/ggml-dequant-legacy.ts: the legacy 32-element GGUF types Q4_1,
// Q5_0 and Q5_1 to f32, in llama.cpp's dequantize_row_* operation order (one f32 rounding per operation).
//
// Layouts (ggml-common.h), 32 elements per block; element j sits in the low nibble of qs[j], element
// j + 16 in the high nibble; the 5-bit types keep bit 4 of element j in bit j of the little-endian u32 qh.

import { readF16 } from './convert'

const f32 = Math.fround

export type LegacyType = 'Q4_1' | 'Q5_0' | 'Q5_1'

export const LEGACY_BLOCKS: Readonly<Record<LegacyType, { elements: number; bytes: number }>> = {
  Q4_1: { elements: 32, bytes: 20 }, // f16 d, f16 m, u8 qs[16]
  Q5_0: { elements: 32, bytes: 22 }, // f16 d, u8 qh[4], u8 qs[16]
  Q5_1: { elements: 32, bytes: 24 }, // f16 d, f16 m, u8 qh[4], u8 qs[16]
}

function readU32(src: Uint8Array, at: number): number {
  return (src[at] | (src[at + 1] << 8) | (src[at + 2] << 16) | (src[at + 3] << 24)) >>> 0
}

export function checkDequantSizes(
  type: string,
  blocks: { elements: number; bytes: number },
  src: Uint8Array,
  nblocks: number,
  dst: Float32Array,
): void {
  if (!Number.isSafeInteger(nblocks) || nblocks < 0)
    throw new RangeError(`dequantize ${type}: bad block count ${nblocks}`)
  if (src.length < nblocks * blocks.bytes) {
    throw new RangeError(
      `dequantize ${type}: ${nblocks} blocks need ${nblocks * blocks.bytes} bytes, the source has ${src.length}`,
    )
  }
  if (dst.length < nblocks * blocks.elements) {
    throw new RangeError(
      `dequantize ${type}: ${nblocks} blocks need ${nblocks * blocks.elements} outputs, the destination has ${dst.length}`,
    )
  }
}

/** Q4_1: x = q * d + m. */
export function dequantizeQ4_1(src: Uint8Array, nblocks: number, dst: Float32Array): void {
  checkDequantSizes('Q4_1', LEGACY_BLOCKS.Q4_1, src, nblocks, dst)
  for (let b = 0; b < nblocks; b++) {
    const at = b * 20
    const d = readF16(src, at)
    const m = readF16(src, at + 2)
    const out = b * 32
    for (let j = 0; j < 16; j++) {
      const byte = src[at + 4 + j]
      dst[out + j] = f32(f32((byte & 0xf) * d) + m)
      dst[out + j + 16] = f32(f32((byte >> 4) * d) + m)
    }
  }
}

/** Q5_0: x = (q - 16) * d. */
export function dequantizeQ5_0(src: Uint8Array, nblocks: number, dst: Float32Array): void {
  checkDequantSizes('Q5_0', LEGACY_BLOCKS.Q5_0, src, nblocks, dst)
  for (let b = 0; b < nblocks; b++) {
    const at = b * 22
    const d = readF16(src, at)
    const qh = readU32(src, at + 2)
    const out = b * 32
    for (let j = 0; j < 16; j++) {
      const byte = src[at + 6 + j]
      const q0 = (byte & 0xf) | (((qh >>> j) & 1) << 4)
      const q1 = (byte >> 4) | (((qh >>> (j + 16)) & 1) << 4)
      dst[out + j] = f32((q0 - 16) * d)
      dst[out + j + 16] = f32((q1 - 16) * d)
    }
  }
}

/** Q5_1: x = q * d + m. */
export function dequantizeQ5_1(src: Uint8Array, nblocks: number, dst: Float32Array): void {
  checkDequantSizes('Q5_1', LEGACY_BLOCKS.Q5_1, src, nblocks, dst)
  for (let b = 0; b < nblocks; b++) {
    const at = b * 24
    const d = readF16(src, at)
    const m = readF16(src, at + 2)
    const qh = readU32(src, at + 4)
    const out = b * 32
    for (let j = 0; j < 16; j++) {
      const byte = src[at + 8 + j]
      const q0 = (byte & 0xf) | (((qh >>> j) & 1) << 4)
      const q1 = (byte >> 4) | (((qh >>> (j + 16)) & 1) << 4)
      dst[out + j] = f32(f32(q0 * d) + m)
      dst[out + j + 16] = f32(f32(q1 * d) + m)
    }
  }
}
