// Non-linear 4-bit types IQ4_NL and IQ4_XS -> f32. Twin: kernels/reference/ggml-dequant-iq.ts (bit-exact:
// one f32 multiply per element, d · grid[q], in dequantize_row_iq4_nl / iq4_xs order). The 16-entry int8
// grid fits one v128, so a swizzle by the nibbles looks up 16 levels at once.

import { f16ToF32Scalar } from './convert'
import { storeI8x16Times } from './ggml-dequant-legacy'

/** llama.cpp's kvalues_iq4nl (twin: IQ4_VALUES). */
// @ts-ignore: decorator
@inline function iq4Grid(): v128 {
  return i8x16(-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113)
}

/** 16 qs bytes at `qs` -> 32 f32 at `out`: element j from the low nibble of byte j, j + 16 from the high. */
// @ts-ignore: decorator
@inline function decodeGroup(qs: usize, d: v128, out: usize): void {
  const bytes = v128.load(qs)
  storeI8x16Times(i8x16.swizzle(iq4Grid(), v128.and(bytes, i8x16.splat(0x0f))), d, out)
  storeI8x16Times(i8x16.swizzle(iq4Grid(), i8x16.shr_u(bytes, 4)), d, out + 64)
}

/** IQ4_NL, 18-byte blocks of 32: f16 d, qs[16]; x = d · grid[q]. */
export function dequant_iq4_nl(src: usize, dst: usize, nblocks: i32): void {
  for (let b = 0; b < nblocks; b++) {
    const block = src + <usize>b * 18
    decodeGroup(block + 2, f32x4.splat(f16ToF32Scalar(<u32>load<u16>(block))), dst + <usize>b * 128)
  }
}

/** IQ4_XS, 136-byte blocks of 256: f16 d, u16 scales_h, scales_l[4], qs[128]; x = (d · (ls − 32)) · grid[q]. */
export function dequant_iq4_xs(src: usize, dst: usize, nblocks: i32): void {
  for (let b = 0; b < nblocks; b++) {
    const block = src + <usize>b * 136
    const d = f16ToF32Scalar(<u32>load<u16>(block))
    const scalesH = <i32>load<u16>(block, 2)
    for (let ib = 0; ib < 8; ib++) {
      const ls = ((<i32>load<u8>(block + 4 + <usize>(ib >> 1)) >> (4 * (ib & 1))) & 0xf) | (((scalesH >> (2 * ib)) & 3) << 4)
      decodeGroup(block + 8 + <usize>(ib << 4), f32x4.splat(d * <f32>(ls - 32)), dst + (<usize>b * 256 + <usize>(ib << 5)) * 4)
    }
  }
}
