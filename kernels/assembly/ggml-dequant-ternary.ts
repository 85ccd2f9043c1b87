// Ternary types TQ1_0 and TQ2_0 -> f32. Twin: kernels/reference/ggml-dequant-ternary.ts (bit-exact:
// x = (t − 1) · d, one f32 multiply). TQ1_0 packs five trits per byte in base 3 scaled to 0..255; trit n
// is the top of (byte · 3^n mod 256) · 3 / 256, computed here in 16-bit lanes.

import { f16ToF32Scalar } from './convert'
import { storeI8x16Times } from './ggml-dequant-legacy'

/** Trit n (as t − 1, int8 lanes) of each of 16 packed bytes. */
// @ts-ignore: decorator
@inline function tritsMinusOne(bytes: v128, pow3: i32): v128 {
  const mask = i16x8.splat(0xff)
  const p = i16x8.splat(<i16>pow3)
  const three = i16x8.splat(3)
  const lo = i16x8.shr_u(i16x8.mul(v128.and(i16x8.mul(i16x8.extend_low_i8x16_u(bytes), p), mask), three), 8)
  const hi = i16x8.shr_u(i16x8.mul(v128.and(i16x8.mul(i16x8.extend_high_i8x16_u(bytes), p), mask), three), 8)
  return i8x16.sub(i8x16.narrow_i16x8_u(lo, hi), i8x16.splat(1))
}

/** TQ1_0, 54-byte blocks of 256: qs[48] (five trits each), qh[4] (four each), f16 d. */
export function dequant_tq1_0(src: usize, dst: usize, nblocks: i32): void {
  for (let b = 0; b < nblocks; b++) {
    const block = src + <usize>b * 54
    const d = f16ToF32Scalar(<u32>load<u16>(block, 52))
    const dv = f32x4.splat(d)
    const out = dst + <usize>b * 1024
    const first = v128.load(block)
    const second = v128.load(block + 16)
    const third = v128.load(block + 32)
    let pow3 = 1
    for (let n = 0; n < 5; n++) {
      // Elements 32n + m from qs[m], m < 32; elements 160 + 16n + m from qs[32 + m], m < 16.
      storeI8x16Times(tritsMinusOne(first, pow3), dv, out + <usize>(n << 7))
      storeI8x16Times(tritsMinusOne(second, pow3), dv, out + <usize>(n << 7) + 64)
      storeI8x16Times(tritsMinusOne(third, pow3), dv, out + 640 + <usize>(n << 6))
      pow3 *= 3
    }
    // Elements 240 + 4n + j from qh[j]: 16 values, scalar.
    pow3 = 1
    for (let n = 0; n < 4; n++) {
      for (let j = 0; j < 4; j++) {
        const t = (((<i32>load<u8>(block + 48 + <usize>j) * pow3) & 0xff) * 3) >> 8
        store<f32>(out + <usize>(240 + 4 * n + j) * 4, <f32>(t - 1) * d)
      }
      pow3 *= 3
    }
  }
}

/** TQ2_0, 66-byte blocks of 256: qs[64], f16 d; element 128h + 32n + m at bits 2n of qs[32h + m]. */
export function dequant_tq2_0(src: usize, dst: usize, nblocks: i32): void {
  const three = i8x16.splat(3)
  const one = i8x16.splat(1)
  for (let b = 0; b < nblocks; b++) {
    const block = src + <usize>b * 66
    const d = f32x4.splat(f16ToF32Scalar(<u32>load<u16>(block, 64)))
    for (let half = 0; half < 2; half++) {
      for (let part = 0; part < 2; part++) {
        const bytes = v128.load(block + <usize>(half * 32 + part * 16))
        for (let n = 0; n < 4; n++) {
          const t = i8x16.sub(v128.and(i8x16.shr_u(bytes, <u32>(2 * n)), three), one)
          storeI8x16Times(t, d, dst + (<usize>b * 256 + <usize>(128 * half + 32 * n + 16 * part)) * 4)
        }
      }
    }
  }
}
