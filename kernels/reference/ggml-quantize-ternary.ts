// Reference twin of kernels/assembly/ggml-quantize-ternary.ts: f32 -> the ternary types TQ1_0 and TQ2_0
// (BitNet b1.58 / TriLM weights), byte-exact with llama.cpp's quantize_row_tq1_0_ref / tq2_0_ref, which
// llama-quantize always uses (they take no importance matrix). Layouts in ./ggml-dequant-ternary.
//
// Each element becomes a trit t = lroundf(x / absmax) + 1 in {0, 1, 2}. lroundf rounds halves away from
// zero; for NaN or ±Inf (an all-NaN block, or 1 / absmax overflowing) glibc's lroundf returns LONG_MIN on
// x86-64 and C's `int xi = lroundf(v) + 1` keeps the low 32 bits of LONG_MIN + 1, i.e. 1.

import { putF16, roundHalfAway } from './ggml-quantize'
import { TERNARY_BLOCKS, type TernaryType } from './ggml-dequant-ternary'

const f32 = Math.fround

function checkSizes(type: TernaryType, src: Float32Array, nblocks: number, dst: Uint8Array): void {
  const { elements, bytes } = TERNARY_BLOCKS[type]
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

/** lroundf(v) + 1 truncated to a C int, for v = x * (1 / absmax) (see the header). */
export function trit(v: number): number {
  if (!Number.isFinite(v) || Math.abs(v) >= 2 ** 63) return 1
  return (roundHalfAway(v) + 1) | 0
}

/** absmax of 256 elements with C's MAX(amax, |v|) (a NaN sticks until a later value replaces it). */
function absmax256(src: Float32Array, x: number): number {
  let amax = 0
  for (let j = 0; j < 256; j++) {
    const a = Math.abs(src[x + j])
    amax = amax > a ? amax : a
  }
  return amax
}

/** The scale's fp16 at dst[at], and 1 / absmax (0 when absmax is 0). */
function putScale(src: Float32Array, x: number, dst: Uint8Array, at: number): number {
  const d = absmax256(src, x)
  putF16(dst, at, d)
  return d !== 0 ? f32(1 / d) : 0
}

/**
 * Five trits of x[e], x[e + stride], ... packed base 3 (first trit most significant), then scaled to a
 * byte by ceil(q · 256 / 243) so that the decoder can read trit n as the top of (byte · 3^n) · 3 / 256.
 * `count` = 4 for the qh bytes, which multiply by 3 once more to leave the first trit on top.
 */
function packTrits(src: Float32Array, e: number, stride: number, count: number, id: number): number {
  let q = 0
  for (let n = 0; n < count; n++) q = (q * 3 + trit(f32(src[e + n * stride] * id))) & 0xff
  if (count === 4) q = (q * 3) & 0xff
  return Math.floor(((q & 0xffff) * 256 + 242) / 243) & 0xff
}

/**
 * TQ1_0 (54-byte blocks: qs[48], qh[4], f16 d = absmax). qs[m] for m < 32 packs elements m + 32n
 * (n = 0..4), qs[32 + m] for m < 16 packs elements 160 + m + 16n, and qh[j] packs elements 240 + j + 4n
 * (n = 0..3).
 */
export function quantizeTQ1_0(src: Float32Array, nblocks: number, dst: Uint8Array): void {
  checkSizes('TQ1_0', src, nblocks, dst)
  for (let b = 0; b < nblocks; b++) {
    const x = b * 256
    const at = b * 54
    const id = putScale(src, x, dst, at + 52)
    for (let m = 0; m < 32; m++) dst[at + m] = packTrits(src, x + m, 32, 5, id)
    for (let m = 0; m < 16; m++) dst[at + 32 + m] = packTrits(src, x + 160 + m, 16, 5, id)
    for (let j = 0; j < 4; j++) dst[at + 48 + j] = packTrits(src, x + 240 + j, 4, 4, id)
  }
}

/** TQ2_0 (66-byte blocks: qs[64], f16 d = absmax): element 128h + 32n + m at bits 2n of qs[32h + m]. */
export function quantizeTQ2_0(src: Float32Array, nblocks: number, dst: Uint8Array): void {
  checkSizes('TQ2_0', src, nblocks, dst)
  for (let b = 0; b < nblocks; b++) {
    const x = b * 256
    const at = b * 66
    const id = putScale(src, x, dst, at + 64)
    for (let half = 0; half < 2; half++) {
      for (let m = 0; m < 32; m++) {
        let q = 0
        for (let n = 0; n < 4; n++) q += (trit(f32(src[x + 128 * half + 32 * n + m] * id)) & 3) << (2 * n)
        dst[at + 32 * half + m] = q & 0xff
      }
    }
  }
}
