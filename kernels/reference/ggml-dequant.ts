// Reference twin of kernels/assembly/ggml-dequant.ts: GGUF block types to f32.
// Block layouts and decode formulas follow llama.cpp (ggml-common.h block structs, ggml-quants.c
// dequantize_row_*). Arithmetic is f32 with one rounding per operation, in the same order as those
// functions and as the WASM kernels, so results are bit-exact: every product or difference of f32
// values is computed in f64 and rounded once by Math.fround, which equals the f32 operation.

import { readF16 } from './convert'

const f32 = Math.fround

export type DequantType = 'Q8_0' | 'Q4_0' | 'Q4_K' | 'Q5_K' | 'Q6_K'

/** Elements per block and bytes per block of each type. */
export const DEQUANT_BLOCKS: Readonly<Record<DequantType, { elements: number; bytes: number }>> = {
  Q8_0: { elements: 32, bytes: 34 }, // f16 d, int8 qs[32]
  Q4_0: { elements: 32, bytes: 18 }, // f16 d, u8 qs[16] (two 4-bit values per byte)
  Q4_K: { elements: 256, bytes: 144 }, // f16 d, f16 dmin, u8 scales[12], u8 qs[128]
  Q5_K: { elements: 256, bytes: 176 }, // f16 d, f16 dmin, u8 scales[12], u8 qh[32], u8 qs[128]
  Q6_K: { elements: 256, bytes: 210 }, // u8 ql[128], u8 qh[64], int8 scales[16], f16 d
}

function checkSizes(type: DequantType, src: Uint8Array, nblocks: number, dst: Float32Array): void {
  const { elements, bytes } = DEQUANT_BLOCKS[type]
  if (!Number.isSafeInteger(nblocks) || nblocks < 0)
    throw new RangeError(`dequantize ${type}: bad block count ${nblocks}`)
  if (src.length < nblocks * bytes) {
    throw new RangeError(
      `dequantize ${type}: ${nblocks} blocks need ${nblocks * bytes} bytes, the source has ${src.length}`,
    )
  }
  if (dst.length < nblocks * elements) {
    throw new RangeError(
      `dequantize ${type}: ${nblocks} blocks need ${nblocks * elements} outputs, the destination has ${dst.length}`,
    )
  }
}

/** Q8_0: x = q * d. */
export function dequantizeQ8_0(src: Uint8Array, nblocks: number, dst: Float32Array): void {
  checkSizes('Q8_0', src, nblocks, dst)
  for (let b = 0; b < nblocks; b++) {
    const at = b * 34
    const d = readF16(src, at)
    const out = b * 32
    for (let j = 0; j < 32; j++) {
      const q = (src[at + 2 + j] << 24) >> 24 // int8
      dst[out + j] = f32(q * d)
    }
  }
}

/** Q4_0: byte j holds element j (low nibble) and element j + 16 (high nibble); x = (q - 8) * d. */
export function dequantizeQ4_0(src: Uint8Array, nblocks: number, dst: Float32Array): void {
  checkSizes('Q4_0', src, nblocks, dst)
  for (let b = 0; b < nblocks; b++) {
    const at = b * 18
    const d = readF16(src, at)
    const out = b * 32
    for (let j = 0; j < 16; j++) {
      const byte = src[at + 2 + j]
      dst[out + j] = f32(((byte & 0x0f) - 8) * d)
      dst[out + j + 16] = f32(((byte >> 4) - 8) * d)
    }
  }
}

/**
 * The 6-bit scale and min of Q4_K sub-block j (0..7) from the 12 packed bytes starting at `at`.
 * Sub-blocks 0-3 keep theirs in the low 6 bits of bytes j and j+4; sub-blocks 4-7 keep the low 4 bits
 * in byte j+4 and the top 2 bits in the spare high bits of bytes j-4 (scale) and j (min).
 */
export function q4kScaleMin(src: Uint8Array, at: number, j: number): { scale: number; min: number } {
  if (j < 4) return { scale: src[at + j] & 63, min: src[at + j + 4] & 63 }
  return {
    scale: (src[at + j + 4] & 0x0f) | ((src[at + j - 4] >> 6) << 4),
    min: (src[at + j + 4] >> 4) | ((src[at + j] >> 6) << 4),
  }
}

/**
 * Q4_K and Q5_K: 8 sub-blocks of 32 with 6-bit scales and mins packed into 12 bytes; x = d·scale·q − dmin·min.
 * Each 32 qs bytes hold two sub-blocks (low nibbles, then high). Q5_K adds a fifth bit per value from
 * qh[32] (bit 2g of qh[l] for the low nibble of group g's byte l, bit 2g + 1 for the high one).
 */
function dequantizeK(type: 'Q4_K' | 'Q5_K', src: Uint8Array, nblocks: number, dst: Float32Array): void {
  checkSizes(type, src, nblocks, dst)
  const five = type === 'Q5_K'
  const blockBytes = five ? 176 : 144
  for (let b = 0; b < nblocks; b++) {
    const at = b * blockBytes
    const d = readF16(src, at)
    const dmin = readF16(src, at + 2)
    const scalesAt = at + 4
    const qhAt = at + 16
    const qsAt = five ? at + 48 : at + 16
    for (let group = 0; group < 4; group++) {
      const lowNibbles = q4kScaleMin(src, scalesAt, 2 * group)
      const highNibbles = q4kScaleMin(src, scalesAt, 2 * group + 1)
      const d1 = f32(d * lowNibbles.scale)
      const m1 = f32(dmin * lowNibbles.min)
      const d2 = f32(d * highNibbles.scale)
      const m2 = f32(dmin * highNibbles.min)
      const q = qsAt + group * 32
      const out = b * 256 + group * 64
      for (let l = 0; l < 32; l++) {
        const byte = src[q + l]
        const h = five ? src[qhAt + l] : 0
        dst[out + l] = f32(f32(d1 * ((byte & 0x0f) + ((h >> (2 * group)) & 1) * 16)) - m1)
        dst[out + 32 + l] = f32(f32(d2 * ((byte >> 4) + ((h >> (2 * group + 1)) & 1) * 16)) - m2)
      }
    }
  }
}

export function dequantizeQ4_K(src: Uint8Array, nblocks: number, dst: Float32Array): void {
  dequantizeK('Q4_K', src, nblocks, dst)
}

export function dequantizeQ5_K(src: Uint8Array, nblocks: number, dst: Float32Array): void {
  dequantizeK('Q5_K', src, nblocks, dst)
}

/**
 * Q6_K: 16 sub-blocks of 16 with int8 scales; q = (4 low bits from ql | 2 high bits from qh) - 32,
 * x = (d * scale) * q. Each half (128 elements) uses 64 ql bytes, 32 qh bytes and 8 scales.
 */
export function dequantizeQ6_K(src: Uint8Array, nblocks: number, dst: Float32Array): void {
  checkSizes('Q6_K', src, nblocks, dst)
  for (let b = 0; b < nblocks; b++) {
    const at = b * 210
    const d = readF16(src, at + 208)
    for (let half = 0; half < 2; half++) {
      const ql = at + half * 64
      const qh = at + 128 + half * 32
      const sc = at + 192 + half * 8
      const out = b * 256 + half * 128
      for (let l = 0; l < 32; l++) {
        const is = l >> 4
        const low = src[ql + l]
        const low32 = src[ql + l + 32]
        const high = src[qh + l]
        const q1 = ((low & 0x0f) | ((high & 3) << 4)) - 32
        const q2 = ((low32 & 0x0f) | (((high >> 2) & 3) << 4)) - 32
        const q3 = ((low >> 4) | (((high >> 4) & 3) << 4)) - 32
        const q4 = ((low32 >> 4) | (((high >> 6) & 3) << 4)) - 32
        dst[out + l] = f32(f32(d * int8(src[sc + is])) * q1)
        dst[out + l + 32] = f32(f32(d * int8(src[sc + is + 2])) * q2)
        dst[out + l + 64] = f32(f32(d * int8(src[sc + is + 4])) * q3)
        dst[out + l + 96] = f32(f32(d * int8(src[sc + is + 6])) * q4)
      }
    }
  }
}

function int8(byte: number): number {
  return (byte << 24) >> 24
}

const DEQUANTIZERS: Readonly<Record<DequantType, (src: Uint8Array, nblocks: number, dst: Float32Array) => void>> = {
  Q8_0: dequantizeQ8_0,
  Q4_0: dequantizeQ4_0,
  Q4_K: dequantizeQ4_K,
  Q5_K: dequantizeQ5_K,
  Q6_K: dequantizeQ6_K,
}

/** Dequantizes `n` elements (a whole number of blocks) of `type` from `src` into `dst[0..n)`. */
export function dequantizeRow(type: DequantType, src: Uint8Array, n: number, dst: Float32Array): void {
  const block = DEQUANT_BLOCKS[type]
  if (!block) throw new RangeError(`dequantize: unsupported block type ${String(type)}`)
  if (!Number.isSafeInteger(n) || n < 0 || n % block.elements !== 0) {
    throw new RangeError(`dequantize ${type}: ${n} elements is not a whole number of ${block.elements}-element blocks`)
  }
  DEQUANTIZERS[type](src, n / block.elements, dst)
}
