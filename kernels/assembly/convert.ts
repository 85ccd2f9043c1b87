// Narrow float encodings -> f32. Twin: kernels/reference/convert.ts (bit-exact; every value is exact in f32).
//
// The trick, shared by F16 and the FP8 types: move the exponent and mantissa fields into the matching
// positions of an f32 (so the f32 has the right mantissa and an exponent short by the bias difference),
// then multiply by 2^(127 - bias). The product is exact, and it turns f32 subnormals from small
// source values into the right normal f32s, so subnormals need no branch. Inf/NaN patterns are handled
// with a lane select; signs are OR-ed back last (so -0 stays -0).

// f32 bit patterns of the exact powers of two that re-bias the exponent.
const F16_REBIAS: u32 = (127 + 112) << 23 // 2^112 = 2^(127 - 15)
const E4M3_REBIAS: u32 = (127 + 120) << 23 // 2^120 = 2^(127 - 7)
const F32_EXPONENT_ALL_ONES: u32 = 0x7f800000
const F32_QUIET_NAN: u32 = 0x7fc00000

/** Four f16 patterns in the low halves of i32 lanes -> four f32. */
// @ts-ignore: decorator
@inline export function f16x4ToF32(h: v128): v128 {
  const magnitude = v128.and(h, i32x4.splat(0x7fff))
  const shifted = i32x4.shl(magnitude, 13)
  const finite = f32x4.mul(shifted, i32x4.splat(F16_REBIAS))
  // Exponent all ones: Inf or NaN, mantissa (and so NaN payload) kept.
  const special = v128.or(shifted, i32x4.splat(F32_EXPONENT_ALL_ONES))
  const isSpecial = i32x4.gt_s(magnitude, i32x4.splat(0x7bff))
  const sign = i32x4.shl(v128.and(h, i32x4.splat(0x8000)), 16)
  return v128.or(v128.bitselect(special, finite, isSpecial), sign)
}

// @ts-ignore: decorator
@inline export function f16ToF32Scalar(h: u32): f32 {
  const magnitude = h & 0x7fff
  const shifted = magnitude << 13
  const bits: u32 = magnitude > 0x7bff
    ? shifted | F32_EXPONENT_ALL_ONES
    : reinterpret<u32>(reinterpret<f32>(shifted) * reinterpret<f32>(F16_REBIAS))
  return reinterpret<f32>(bits | ((h & 0x8000) << 16))
}

/** Four E4M3FN bytes in i32 lanes -> four f32. */
// @ts-ignore: decorator
@inline function e4m3x4ToF32(b: v128): v128 {
  const magnitude = v128.and(b, i32x4.splat(0x7f))
  const value = f32x4.mul(i32x4.shl(magnitude, 20), i32x4.splat(E4M3_REBIAS))
  const isNaN = i32x4.eq(magnitude, i32x4.splat(0x7f)) // S.1111.111, the only NaN; no infinities
  const sign = i32x4.shl(v128.and(b, i32x4.splat(0x80)), 24)
  return v128.or(v128.bitselect(i32x4.splat(F32_QUIET_NAN), value, isNaN), sign)
}

// @ts-ignore: decorator
@inline function e4m3ToF32Scalar(b: u32): f32 {
  const magnitude = b & 0x7f
  const bits: u32 = magnitude == 0x7f
    ? F32_QUIET_NAN
    : reinterpret<u32>(reinterpret<f32>(magnitude << 20) * reinterpret<f32>(E4M3_REBIAS))
  return reinterpret<f32>(bits | ((b & 0x80) << 24))
}

export function convert_f16(src: usize, dst: usize, n: i32): void {
  const n8 = n & ~7
  let i = 0
  for (; i < n8; i += 8) {
    const h = v128.load(src + (<usize>i << 1))
    const out = dst + (<usize>i << 2)
    v128.store(out, f16x4ToF32(i32x4.extend_low_i16x8_u(h)))
    v128.store(out, f16x4ToF32(i32x4.extend_high_i16x8_u(h)), 16)
  }
  for (; i < n; i++) {
    store<f32>(dst + (<usize>i << 2), f16ToF32Scalar(<u32>load<u16>(src + (<usize>i << 1))))
  }
}

/** bf16 is the top half of an f32: a shift, which keeps every bit (NaN payloads included). */
export function convert_bf16(src: usize, dst: usize, n: i32): void {
  const n8 = n & ~7
  let i = 0
  for (; i < n8; i += 8) {
    const h = v128.load(src + (<usize>i << 1))
    const out = dst + (<usize>i << 2)
    v128.store(out, i32x4.shl(i32x4.extend_low_i16x8_u(h), 16))
    v128.store(out, i32x4.shl(i32x4.extend_high_i16x8_u(h), 16), 16)
  }
  for (; i < n; i++) {
    store<u32>(dst + (<usize>i << 2), <u32>load<u16>(src + (<usize>i << 1)) << 16)
  }
}

export function convert_f8e4m3(src: usize, dst: usize, n: i32): void {
  const n16 = n & ~15
  let i = 0
  for (; i < n16; i += 16) {
    const bytes = v128.load(src + <usize>i)
    const lo = i16x8.extend_low_i8x16_u(bytes)
    const hi = i16x8.extend_high_i8x16_u(bytes)
    const out = dst + (<usize>i << 2)
    v128.store(out, e4m3x4ToF32(i32x4.extend_low_i16x8_u(lo)))
    v128.store(out, e4m3x4ToF32(i32x4.extend_high_i16x8_u(lo)), 16)
    v128.store(out, e4m3x4ToF32(i32x4.extend_low_i16x8_u(hi)), 32)
    v128.store(out, e4m3x4ToF32(i32x4.extend_high_i16x8_u(hi)), 48)
  }
  for (; i < n; i++) {
    store<f32>(dst + (<usize>i << 2), e4m3ToF32Scalar(<u32>load<u8>(src + <usize>i)))
  }
}

/** E5M2 has F16's exponent and bias, so a byte shifted up by 8 is the f16 of the same value. */
export function convert_f8e5m2(src: usize, dst: usize, n: i32): void {
  const n16 = n & ~15
  let i = 0
  for (; i < n16; i += 16) {
    const bytes = v128.load(src + <usize>i)
    const lo = i16x8.shl(i16x8.extend_low_i8x16_u(bytes), 8)
    const hi = i16x8.shl(i16x8.extend_high_i8x16_u(bytes), 8)
    const out = dst + (<usize>i << 2)
    v128.store(out, f16x4ToF32(i32x4.extend_low_i16x8_u(lo)))
    v128.store(out, f16x4ToF32(i32x4.extend_high_i16x8_u(lo)), 16)
    v128.store(out, f16x4ToF32(i32x4.extend_low_i16x8_u(hi)), 32)
    v128.store(out, f16x4ToF32(i32x4.extend_high_i16x8_u(hi)), 48)
  }
  for (; i < n; i++) {
    store<f32>(dst + (<usize>i << 2), f16ToF32Scalar(<u32>load<u8>(src + <usize>i) << 8))
  }
}
