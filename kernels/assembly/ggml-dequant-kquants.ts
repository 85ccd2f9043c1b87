// Low-bit K-quants Q2_K and Q3_K -> f32. Twin: kernels/reference/ggml-dequant-kquants.ts (bit-exact:
// plain f32 mul/sub in dequantize_row_q2_K / q3_K order). Both hold 2-bit levels four per byte: the 16
// elements of sub-block j all sit in the 16 bytes at qs + 32 * (j / 8) + 16 * (j % 2), at bits 2 * ((j / 2) % 4),
// so one v128 load and shift gives a whole sub-block.

import { f16ToF32Scalar } from './convert'
import { storeI8x16Times } from './ggml-dequant-legacy'

/** Byte address of sub-block j's 16 level bytes, and the shift of its 2-bit field. */
// @ts-ignore: decorator
@inline function levelBytes(qs: usize, j: i32): usize {
  return qs + <usize>((j >> 3) << 5) + <usize>((j & 1) << 4)
}

// @ts-ignore: decorator
@inline function levelShift(j: i32): u32 {
  return <u32>(((j >> 1) & 3) << 1)
}

/** Q2_K, 84-byte blocks of 256: scales[16] (scale | min << 4), qs[64], f16 d, f16 dmin; x = (d·sc)·q − dmin·m. */
export function dequant_q2_k(src: usize, dst: usize, nblocks: i32): void {
  const three = i8x16.splat(3)
  for (let b = 0; b < nblocks; b++) {
    const block = src + <usize>b * 84
    const d = f16ToF32Scalar(<u32>load<u16>(block, 80))
    const dmin = f16ToF32Scalar(<u32>load<u16>(block, 82))
    for (let j = 0; j < 16; j++) {
      const sc = <u32>load<u8>(block + <usize>j)
      const dl = f32x4.splat(d * <f32>(sc & 0xf))
      const ml = f32x4.splat(dmin * <f32>(sc >> 4))
      const q = v128.and(i8x16.shr_u(v128.load(levelBytes(block + 16, j)), levelShift(j)), three)
      const out = dst + (<usize>b * 256 + <usize>(j << 4)) * 4
      const lo = i16x8.extend_low_i8x16_u(q)
      const hi = i16x8.extend_high_i8x16_u(q)
      v128.store(out, f32x4.sub(f32x4.mul(dl, f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_u(lo))), ml))
      v128.store(out, f32x4.sub(f32x4.mul(dl, f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_u(lo))), ml), 16)
      v128.store(out, f32x4.sub(f32x4.mul(dl, f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_u(hi))), ml), 32)
      v128.store(out, f32x4.sub(f32x4.mul(dl, f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_u(hi))), ml), 48)
    }
  }
}

/** Q3_K's 6-bit scale (0..63) of sub-block j from the 12 packed bytes at p (twin: q3kScale). */
// @ts-ignore: decorator
@inline export function q3kScale(p: usize, j: i32): i32 {
  const low = j < 8 ? <i32>load<u8>(p + <usize>j) & 0xf : <i32>load<u8>(p + <usize>(j - 8)) >> 4
  return low | (((<i32>load<u8>(p + <usize>(8 + (j & 3))) >> (2 * (j >> 2))) & 3) << 4)
}

/**
 * Q3_K, 110-byte blocks of 256: hmask[32], qs[64], scales[12], f16 d; x = (d·(sc − 32))·(q − 4 + 4h), with h
 * bit j / 2 of hmask[16 * (j % 2) + i] for element i of sub-block j.
 */
export function dequant_q3_k(src: usize, dst: usize, nblocks: i32): void {
  const three = i8x16.splat(3)
  const one = i8x16.splat(1)
  const four = i8x16.splat(4)
  for (let b = 0; b < nblocks; b++) {
    const block = src + <usize>b * 110
    const d = f16ToF32Scalar(<u32>load<u16>(block, 108))
    for (let j = 0; j < 16; j++) {
      const dl = f32x4.splat(d * <f32>(q3kScale(block + 96, j) - 32))
      const q = v128.and(i8x16.shr_u(v128.load(levelBytes(block + 32, j)), levelShift(j)), three)
      const h = v128.and(i8x16.shr_u(v128.load(block + <usize>((j & 1) << 4)), <u32>(j >> 1)), one)
      storeI8x16Times(i8x16.sub(v128.or(q, i8x16.shl(h, 2)), four), dl, dst + (<usize>b * 256 + <usize>(j << 4)) * 4)
    }
  }
}
