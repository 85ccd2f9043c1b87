// Reference twin of kernels/assembly/ggml-quantize-legacy.ts: f32 -> the legacy 32-element GGUF types
// Q4_1, Q5_0 and Q5_1, byte-exact with llama.cpp's quantize_row_q4_1_ref / q5_0_ref / q5_1_ref (what
// llama-quantize runs for them without an importance matrix). The rounding rules (one f32 rounding per
// operation, x86-64 cast semantics, RNE fp16) are those of ./ggml-quantize; block layouts are in
// ./ggml-dequant-legacy.
//
// The three casts differ on purpose, as in C: Q4_1 and Q5_0 go through (int8_t) and then clamp with
// MIN(nmax, ·); Q5_1 casts straight to (uint8_t) and does not clamp.

import { castToInt32, int8, putF16 } from './ggml-quantize'
import { LEGACY_BLOCKS, type LegacyType } from './ggml-dequant-legacy'

const f32 = Math.fround

/** C's FLT_MAX, the starting min (negated: max) of the asymmetric types. */
const FLT_MAX = 3.4028234663852886e38

function checkSizes(type: LegacyType, src: Float32Array, nblocks: number, dst: Uint8Array): void {
  const { elements, bytes } = LEGACY_BLOCKS[type]
  if (!Number.isSafeInteger(nblocks) || nblocks < 0)
    throw new RangeError(`quantize ${type}: bad block count ${nblocks}`)
  if (src.length < nblocks * elements) {
    throw new RangeError(
      `quantize ${type}: ${nblocks} blocks need ${nblocks * elements} inputs, the source has ${src.length}`,
    )
  }
  if (dst.length < nblocks * bytes) {
    throw new RangeError(
      `quantize ${type}: ${nblocks} blocks need ${nblocks * bytes} bytes, the destination has ${dst.length}`,
    )
  }
}

function putU32(dst: Uint8Array, at: number, v: number): void {
  dst[at] = v & 0xff
  dst[at + 1] = (v >>> 8) & 0xff
  dst[at + 2] = (v >>> 16) & 0xff
  dst[at + 3] = v >>> 24
}

/** The block's min and max as C's loop finds them (NaN never passes `<` or `>`). */
function minMax(src: Float32Array, x: number): [number, number] {
  let min = FLT_MAX
  let max = -FLT_MAX
  for (let j = 0; j < 32; j++) {
    const v = src[x + j]
    if (v < min) min = v
    if (v > max) max = v
  }
  return [min, max]
}

/**
 * Q4_1 (20-byte blocks: f16 d, f16 m, qs[16]): d = (max - min) / 15, m = min,
 * q = MIN(15, (int8)((x - min) * (1 / d) + 0.5)); element j in the low nibble of byte j, j + 16 in the high.
 */
export function quantizeQ4_1(src: Float32Array, nblocks: number, dst: Uint8Array): void {
  checkSizes('Q4_1', src, nblocks, dst)
  for (let b = 0; b < nblocks; b++) {
    const x = b * 32
    const at = b * 20
    const [min, max] = minMax(src, x)
    const d = f32(f32(max - min) / 15)
    const id = d !== 0 ? f32(1 / d) : 0
    putF16(dst, at, d)
    putF16(dst, at + 2, min)
    for (let j = 0; j < 16; j++) {
      const low = Math.min(15, int8(castToInt32(f32(f32(f32(src[x + j] - min) * id) + 0.5)))) & 0xff
      const high = Math.min(15, int8(castToInt32(f32(f32(f32(src[x + 16 + j] - min) * id) + 0.5)))) & 0xff
      dst[at + 4 + j] = (low | (high << 4)) & 0xff
    }
  }
}

/**
 * Q5_0 (22-byte blocks: f16 d, qh[4], qs[16]): d = m / -16 for the first element m of largest magnitude,
 * q = MIN(31, (int8)(x * (1 / d) + 16.5)); the low 4 bits as in Q4_0, bit 4 of element j at bit j of qh.
 */
export function quantizeQ5_0(src: Float32Array, nblocks: number, dst: Uint8Array): void {
  checkSizes('Q5_0', src, nblocks, dst)
  for (let b = 0; b < nblocks; b++) {
    const x = b * 32
    const at = b * 22
    let amax = 0
    let max = 0
    for (let j = 0; j < 32; j++) {
      const v = src[x + j]
      if (amax < Math.abs(v)) {
        amax = Math.abs(v)
        max = v
      }
    }
    const d = f32(max / -16)
    const id = d !== 0 ? f32(1 / d) : 0
    putF16(dst, at, d)
    let qh = 0
    for (let j = 0; j < 16; j++) {
      const low = Math.min(31, int8(castToInt32(f32(f32(src[x + j] * id) + 16.5)))) & 0xff
      const high = Math.min(31, int8(castToInt32(f32(f32(src[x + 16 + j] * id) + 16.5)))) & 0xff
      dst[at + 6 + j] = (low & 0xf) | ((high & 0xf) << 4)
      qh |= ((low & 0x10) >>> 4) << j
      qh |= ((high & 0x10) >>> 4) << (j + 16)
    }
    putU32(dst, at + 2, qh >>> 0)
  }
}

/**
 * Q5_1 (24-byte blocks: f16 d, f16 m, qh[4], qs[16]): d = (max - min) / 31, m = min,
 * q = (uint8)((x - min) * (1 / d) + 0.5) with no clamp; bits packed as in Q5_0.
 */
export function quantizeQ5_1(src: Float32Array, nblocks: number, dst: Uint8Array): void {
  checkSizes('Q5_1', src, nblocks, dst)
  for (let b = 0; b < nblocks; b++) {
    const x = b * 32
    const at = b * 24
    const [min, max] = minMax(src, x)
    const d = f32(f32(max - min) / 31)
    const id = d !== 0 ? f32(1 / d) : 0
    putF16(dst, at, d)
    putF16(dst, at + 2, min)
    let qh = 0
    for (let j = 0; j < 16; j++) {
      const low = castToInt32(f32(f32(f32(src[x + j] - min) * id) + 0.5)) & 0xff
      const high = castToInt32(f32(f32(f32(src[x + 16 + j] - min) * id) + 0.5)) & 0xff
      dst[at + 8 + j] = (low & 0xf) | ((high & 0xf) << 4)
      qh |= ((low & 0x10) >>> 4) << j
      qh |= ((high & 0x10) >>> 4) << (j + 16)
    }
    putU32(dst, at + 4, qh >>> 0)
  }
}
