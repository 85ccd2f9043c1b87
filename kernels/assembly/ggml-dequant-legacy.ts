// Legacy 32-element GGUF types Q4_1, Q5_0, Q5_1 -> f32. Twin: kernels/reference/ggml-dequant-legacy.ts
// (bit-exact: plain f32 mul then add, no fused multiply-add, in dequantize_row_* order). Blocks are packed
// back to back at 20/22/24 bytes, so v128 loads are unaligned (allowed); none reaches past its block.
// The lane helpers here are shared with the other dequant families (exported to them, not to the host).

import { f16ToF32Scalar } from './convert'

/** 16 int8 lanes, each times `scale`, to 16 f32 at `dst`. */
// @ts-ignore: decorator
@inline export function storeI8x16Times(q: v128, scale: v128, dst: usize): void {
  const lo = i16x8.extend_low_i8x16_s(q)
  const hi = i16x8.extend_high_i8x16_s(q)
  v128.store(dst, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(lo)), scale))
  v128.store(dst, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(lo)), scale), 16)
  v128.store(dst, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(hi)), scale), 32)
  v128.store(dst, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(hi)), scale), 48)
}

/** 16 unsigned byte lanes q, each as q * scale + offset, to 16 f32 at `dst`. */
// @ts-ignore: decorator
@inline function storeU8x16MulAdd(q: v128, scale: v128, offset: v128, dst: usize): void {
  const lo = i16x8.extend_low_i8x16_u(q)
  const hi = i16x8.extend_high_i8x16_u(q)
  v128.store(dst, f32x4.add(f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_u(lo)), scale), offset))
  v128.store(dst, f32x4.add(f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_u(lo)), scale), offset), 16)
  v128.store(dst, f32x4.add(f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_u(hi)), scale), offset), 32)
  v128.store(dst, f32x4.add(f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_u(hi)), scale), offset), 48)
}

/**
 * Bit 4 for each of 16 elements from the 32-bit qh word: lane i gets 0x10 when bit (first + i) is set.
 * The two bytes holding those bits are spread over eight lanes each, then tested against 1, 2, 4, ... 128.
 */
// @ts-ignore: decorator
@inline function fifthBits(qh: u32, upper: bool): v128 {
  const bytes = i32x4.splat(qh)
  const spread = upper
    ? i8x16.swizzle(bytes, i8x16(2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3))
    : i8x16.swizzle(bytes, i8x16(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1))
  const bits = i8x16(1, 2, 4, 8, 16, 32, 64, -128, 1, 2, 4, 8, 16, 32, 64, -128)
  return v128.and(i8x16.ne(v128.and(spread, bits), i8x16.splat(0)), i8x16.splat(0x10))
}

/** Q4_1, 20-byte blocks of 32: f16 d, f16 m, qs[16]; x = q * d + m. */
export function dequant_q4_1(src: usize, dst: usize, nblocks: i32): void {
  const lowMask = i8x16.splat(0x0f)
  for (let b = 0; b < nblocks; b++) {
    const block = src + <usize>b * 20
    const out = dst + <usize>b * 128
    const d = f32x4.splat(f16ToF32Scalar(<u32>load<u16>(block)))
    const m = f32x4.splat(f16ToF32Scalar(<u32>load<u16>(block, 2)))
    const qs = v128.load(block + 4)
    storeU8x16MulAdd(v128.and(qs, lowMask), d, m, out)
    storeU8x16MulAdd(i8x16.shr_u(qs, 4), d, m, out + 64)
  }
}

/** Q5_0, 22-byte blocks of 32: f16 d, qh[4], qs[16]; x = (q - 16) * d. */
export function dequant_q5_0(src: usize, dst: usize, nblocks: i32): void {
  const lowMask = i8x16.splat(0x0f)
  const sixteen = i8x16.splat(16)
  for (let b = 0; b < nblocks; b++) {
    const block = src + <usize>b * 22
    const out = dst + <usize>b * 128
    const d = f32x4.splat(f16ToF32Scalar(<u32>load<u16>(block)))
    const qh = load<u32>(block, 2)
    const qs = v128.load(block + 6)
    storeI8x16Times(i8x16.sub(v128.or(v128.and(qs, lowMask), fifthBits(qh, false)), sixteen), d, out)
    storeI8x16Times(i8x16.sub(v128.or(i8x16.shr_u(qs, 4), fifthBits(qh, true)), sixteen), d, out + 64)
  }
}

/** Q5_1, 24-byte blocks of 32: f16 d, f16 m, qh[4], qs[16]; x = q * d + m. */
export function dequant_q5_1(src: usize, dst: usize, nblocks: i32): void {
  const lowMask = i8x16.splat(0x0f)
  for (let b = 0; b < nblocks; b++) {
    const block = src + <usize>b * 24
    const out = dst + <usize>b * 128
    const d = f32x4.splat(f16ToF32Scalar(<u32>load<u16>(block)))
    const m = f32x4.splat(f16ToF32Scalar(<u32>load<u16>(block, 2)))
    const qh = load<u32>(block, 4)
    const qs = v128.load(block + 8)
    storeU8x16MulAdd(v128.or(v128.and(qs, lowMask), fifthBits(qh, false)), d, m, out)
    storeU8x16MulAdd(v128.or(i8x16.shr_u(qs, 4), fifthBits(qh, true)), d, m, out + 64)
  }
}
