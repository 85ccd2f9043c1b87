// f32 -> the ternary types TQ1_0 and TQ2_0, byte-exact with llama.cpp's quantize_row_tq1_0_ref /
// tq2_0_ref. Twin: kernels/reference/ggml-quantize-ternary.ts, which explains the trit rounding (lroundf,
// and what x86-64 glibc gives for NaN and infinities). The block absmax uses SIMD when the block has no
// NaN (max is then order-free); with a NaN, C's sequential MAX is replayed in scalar.

import { f32ToF16, roundHalfAway } from './ggml-quantize'

/** max |x| over 256 f32 at x with C's MAX(amax, |v|) semantics. */
// @ts-ignore: decorator
@inline function absmax256(x: usize): f32 {
  let acc = f32x4.splat(0)
  let nan = i32x4.splat(0)
  for (let j = 0; j < 1024; j += 16) {
    const v = v128.load(x + <usize>j)
    acc = f32x4.pmax(acc, f32x4.abs(v))
    nan = v128.or(nan, f32x4.ne(v, v))
  }
  if (v128.any_true(nan)) {
    let amax: f32 = 0
    for (let j = 0; j < 256; j++) {
      const a = abs<f32>(load<f32>(x + (<usize>j << 2)))
      amax = amax > a ? amax : a
    }
    return amax
  }
  return max(max(f32x4.extract_lane(acc, 0), f32x4.extract_lane(acc, 1)), max(f32x4.extract_lane(acc, 2), f32x4.extract_lane(acc, 3)))
}

/** lroundf(v) + 1 as a C int (twin: trit): 1 for NaN, ±Inf and |v| >= 2^63. */
// @ts-ignore: decorator
@inline function trit(v: f32): i32 {
  if (!(abs<f32>(v) < <f32>9.223372036854775808e18)) return 1
  return <i32>(<i64>roundHalfAway(v) + 1)
}

/** Writes the fp16 absmax at `at`; returns 1 / absmax (0 when it is 0). */
// @ts-ignore: decorator
@inline function putScale(x: usize, at: usize): f32 {
  const d = absmax256(x)
  store<u16>(at, <u16>f32ToF16(d))
  return d != 0 ? 1 / d : 0
}

/** `count` trits of x[e], x[e + stride], ... in base 3, scaled to a byte by ceil(q · 256 / 243) (twin: packTrits). */
// @ts-ignore: decorator
@inline function packTrits(e: usize, stride: usize, count: i32, id: f32): u8 {
  let q: u32 = 0
  for (let n = 0; n < count; n++) q = (q * 3 + <u32>trit(load<f32>(e + <usize>n * stride) * id)) & 0xff
  if (count == 4) q = (q * 3) & 0xff
  return <u8>((q * 256 + 242) / 243)
}

/** TQ1_0, 54-byte blocks of 256: qs[48], qh[4], f16 d. */
export function quantize_tq1_0(src: usize, dst: usize, nblocks: i32): void {
  for (let b = 0; b < nblocks; b++) {
    const x = src + (<usize>b << 10)
    const y = dst + <usize>b * 54
    const id = putScale(x, y + 52)
    for (let m = 0; m < 32; m++) store<u8>(y + <usize>m, packTrits(x + (<usize>m << 2), 128, 5, id))
    for (let m = 0; m < 16; m++) store<u8>(y + 32 + <usize>m, packTrits(x + 640 + (<usize>m << 2), 64, 5, id))
    for (let j = 0; j < 4; j++) store<u8>(y + 48 + <usize>j, packTrits(x + 960 + (<usize>j << 2), 16, 4, id))
  }
}

/** TQ2_0, 66-byte blocks of 256: qs[64], f16 d; element 128h + 32n + m at bits 2n of qs[32h + m]. */
export function quantize_tq2_0(src: usize, dst: usize, nblocks: i32): void {
  for (let b = 0; b < nblocks; b++) {
    const x = src + (<usize>b << 10)
    const y = dst + <usize>b * 66
    const id = putScale(x, y + 64)
    for (let half = 0; half < 2; half++) {
      for (let m = 0; m < 32; m++) {
        let q: u32 = 0
        for (let n = 0; n < 4; n++) {
          q += (<u32>trit(load<f32>(x + (<usize>(128 * half + 32 * n + m) << 2)) * id) & 3) << (2 * <u32>n)
        }
        store<u8>(y + <usize>(32 * half + m), <u8>q)
      }
    }
  }
}
