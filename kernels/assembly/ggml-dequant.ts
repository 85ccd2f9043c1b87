// GGUF block types -> f32. Twin: kernels/reference/ggml-dequant.ts (bit-exact: plain f32 mul/sub, no fused
// multiply-add, in llama.cpp's dequantize_row_* operation order). Layouts: see the twin's DEQUANT_BLOCKS.
// Blocks are packed back to back at odd sizes (34, 18, 144, 210 bytes), so every v128 load here is
// unaligned, which WebAssembly allows; no load reaches past the block it belongs to.

import { f16ToF32Scalar } from './convert'

/** 16 int8 lanes, each times `scale` (f32x4 splat), to 16 f32 at `dst`. */
// @ts-ignore: decorator
@inline function storeScaledI8x16(q: v128, scale: v128, dst: usize): void {
  const lo = i16x8.extend_low_i8x16_s(q)
  const hi = i16x8.extend_high_i8x16_s(q)
  v128.store(dst, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(lo)), scale))
  v128.store(dst, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(lo)), scale), 16)
  v128.store(dst, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(hi)), scale), 32)
  v128.store(dst, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(hi)), scale), 48)
}

/** 16 unsigned nibble lanes q, each as (scale * q) - offset, to 16 f32 at `dst`. */
// @ts-ignore: decorator
@inline function storeAffineU4x16(q: v128, scale: v128, offset: v128, dst: usize): void {
  const lo = i16x8.extend_low_i8x16_u(q)
  const hi = i16x8.extend_high_i8x16_u(q)
  v128.store(dst, f32x4.sub(f32x4.mul(scale, f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_u(lo))), offset))
  v128.store(dst, f32x4.sub(f32x4.mul(scale, f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_u(lo))), offset), 16)
  v128.store(dst, f32x4.sub(f32x4.mul(scale, f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_u(hi))), offset), 32)
  v128.store(dst, f32x4.sub(f32x4.mul(scale, f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_u(hi))), offset), 48)
}

/** Q8_0, 34-byte blocks of 32: f16 d, int8 qs[32]; x = q * d. */
export function dequant_q8_0(src: usize, dst: usize, nblocks: i32): void {
  for (let b = 0; b < nblocks; b++) {
    const block = src + <usize>b * 34
    const out = dst + <usize>b * 128
    const d = f32x4.splat(f16ToF32Scalar(<u32>load<u16>(block)))
    storeScaledI8x16(v128.load(block + 2), d, out)
    storeScaledI8x16(v128.load(block + 18), d, out + 64)
  }
}

/** Q4_0, 18-byte blocks of 32: f16 d, qs[16] with element j in the low nibble of byte j, j+16 in the high. */
export function dequant_q4_0(src: usize, dst: usize, nblocks: i32): void {
  const lowMask = i8x16.splat(0x0f)
  const eight = i8x16.splat(8)
  for (let b = 0; b < nblocks; b++) {
    const block = src + <usize>b * 18
    const out = dst + <usize>b * 128
    const d = f32x4.splat(f16ToF32Scalar(<u32>load<u16>(block)))
    const qs = v128.load(block + 2)
    storeScaledI8x16(i8x16.sub(v128.and(qs, lowMask), eight), d, out)
    storeScaledI8x16(i8x16.sub(i8x16.shr_u(qs, 4), eight), d, out + 64)
  }
}

// Q4_K's 6-bit scale and min of sub-block j, unpacked from the 12 bytes at `scales` (see the twin).
// @ts-ignore: decorator
@inline function q4kScale(scales: usize, j: i32): u32 {
  if (j < 4) return <u32>load<u8>(scales + <usize>j) & 63
  return (<u32>load<u8>(scales + <usize>(j + 4)) & 0x0f) | ((<u32>load<u8>(scales + <usize>(j - 4)) >> 6) << 4)
}

// @ts-ignore: decorator
@inline function q4kMin(scales: usize, j: i32): u32 {
  if (j < 4) return <u32>load<u8>(scales + <usize>(j + 4)) & 63
  return (<u32>load<u8>(scales + <usize>(j + 4)) >> 4) | ((<u32>load<u8>(scales + <usize>j) >> 6) << 4)
}

/**
 * Q4_K (144-byte blocks of 256: f16 d, f16 dmin, scales[12], qs[128]) and Q5_K (176 bytes: qh[32] before
 * qs). x = d·scale·q − dmin·min, 32 elements per scale; each 32-byte run of qs holds sub-block 2g in the
 * low nibbles and 2g + 1 in the high ones; Q5_K's fifth bit of each is bit 2g (2g + 1) of qh.
 */
function dequantK(src: usize, dst: usize, nblocks: i32, five: bool): void {
  const lowMask = i8x16.splat(0x0f)
  const one = i8x16.splat(1)
  const blockBytes: usize = five ? 176 : 144
  for (let b = 0; b < nblocks; b++) {
    const block = src + <usize>b * blockBytes
    const d = f16ToF32Scalar(<u32>load<u16>(block))
    const dmin = f16ToF32Scalar(<u32>load<u16>(block, 2))
    const scales = block + 4
    const ha = five ? v128.load(block + 16) : i8x16.splat(0)
    const hb = five ? v128.load(block + 32) : i8x16.splat(0)
    const qsBase = block + (five ? 48 : 16)
    for (let group = 0; group < 4; group++) {
      const d1 = f32x4.splat(d * <f32>q4kScale(scales, 2 * group))
      const m1 = f32x4.splat(dmin * <f32>q4kMin(scales, 2 * group))
      const d2 = f32x4.splat(d * <f32>q4kScale(scales, 2 * group + 1))
      const m2 = f32x4.splat(dmin * <f32>q4kMin(scales, 2 * group + 1))
      const qs = qsBase + <usize>group * 32
      const out = dst + (<usize>b * 256 + <usize>group * 64) * 4
      const qa = v128.load(qs)
      const qb = v128.load(qs + 16)
      const s1 = 2 * group, s2 = 2 * group + 1
      storeAffineU4x16(v128.or(v128.and(qa, lowMask), i8x16.shl(v128.and(i8x16.shr_u(ha, s1), one), 4)), d1, m1, out)
      storeAffineU4x16(v128.or(v128.and(qb, lowMask), i8x16.shl(v128.and(i8x16.shr_u(hb, s1), one), 4)), d1, m1, out + 64)
      storeAffineU4x16(v128.or(i8x16.shr_u(qa, 4), i8x16.shl(v128.and(i8x16.shr_u(ha, s2), one), 4)), d2, m2, out + 128)
      storeAffineU4x16(v128.or(i8x16.shr_u(qb, 4), i8x16.shl(v128.and(i8x16.shr_u(hb, s2), one), 4)), d2, m2, out + 192)
    }
  }
}

export function dequant_q4_k(src: usize, dst: usize, nblocks: i32): void {
  dequantK(src, dst, nblocks, false)
}

export function dequant_q5_k(src: usize, dst: usize, nblocks: i32): void {
  dequantK(src, dst, nblocks, true)
}

/**
 * Q6_K, 210-byte blocks of 256: ql[128], qh[64], int8 scales[16], f16 d.
 * q = (4 bits of ql | 2 bits of qh << 4) - 32, x = (d * scale) * q; 16 elements share a scale.
 */
export function dequant_q6_k(src: usize, dst: usize, nblocks: i32): void {
  const lowMask = i8x16.splat(0x0f)
  const twoBits = i8x16.splat(3)
  const bias = i8x16.splat(32)
  for (let b = 0; b < nblocks; b++) {
    const block = src + <usize>b * 210
    const d = f16ToF32Scalar(<u32>load<u16>(block, 208))
    for (let half = 0; half < 2; half++) {
      const ql = block + <usize>half * 64
      const qh = block + 128 + <usize>half * 32
      const sc = block + 192 + <usize>half * 8
      const out = dst + (<usize>b * 256 + <usize>half * 128) * 4
      // l = 16 * part .. 16 * part + 15 all use scale index `part` (+0, +2, +4, +6 for the four quarters).
      for (let part = 0; part < 2; part++) {
        const offset = <usize>part * 16
        const lowA = v128.load(ql + offset)
        const lowB = v128.load(ql + 32 + offset)
        const high = v128.load(qh + offset)
        const q1 = i8x16.sub(v128.or(v128.and(lowA, lowMask), i8x16.shl(v128.and(high, twoBits), 4)), bias)
        const q2 = i8x16.sub(v128.or(v128.and(lowB, lowMask), i8x16.shl(v128.and(i8x16.shr_u(high, 2), twoBits), 4)), bias)
        const q3 = i8x16.sub(v128.or(i8x16.shr_u(lowA, 4), i8x16.shl(v128.and(i8x16.shr_u(high, 4), twoBits), 4)), bias)
        const q4 = i8x16.sub(v128.or(i8x16.shr_u(lowB, 4), i8x16.shl(i8x16.shr_u(high, 6), 4)), bias)
        const s = sc + offset / 16
        const y = out + offset * 4
        storeScaledI8x16(q1, f32x4.splat(d * <f32>load<i8>(s)), y)
        storeScaledI8x16(q2, f32x4.splat(d * <f32>load<i8>(s, 2)), y + 128)
        storeScaledI8x16(q3, f32x4.splat(d * <f32>load<i8>(s, 4)), y + 256)
        storeScaledI8x16(q4, f32x4.splat(d * <f32>load<i8>(s, 6)), y + 384)
      }
    }
  }
}
