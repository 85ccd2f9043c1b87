// f32 -> the low-bit K-quants Q2_K and Q3_K, byte-exact with llama.cpp's quantize_row_q2_K_ref /
// quantize_row_q3_K_ref. Twin: kernels/reference/ggml-quantize-kquants.ts; rounding rules in
// kernels/reference/ggml-quantize.ts. The sub-block fits run in SIMD lanes, one sub-block per lane (Q2_K:
// eight at a time, ./ggml-quantize-asym; Q3_K: four, ./ggml-quantize-lanes), each lane doing the twin's f32 operations in its order; the super-block scales
// are scalar f32 in exactly the twin's order (Binaryen neither fuses nor reorders f32 operations).
//
// These kernels take a `scratch` pointer (QUANT_SCRATCH_BYTES of the caller's
// memory, any alignment) for the per-block level and scale arrays, which do not fit in the output block.

import { f16ToF32Scalar } from './convert'
import { f32ToF16, nearestInt } from './ggml-quantize'
import { q3kScale } from './ggml-dequant-kquants'
import { fitAsym8 } from './ggml-quantize-asym'
import { fitQ3Lanes, transpose4 } from './ggml-quantize-lanes'
import { asymmetricLevels, packQ3K, symmetricLevels16 } from './ggml-quantize-levels'

const ONE_TENTH: f32 = 0.1

// Q2_K's scratch layout (byte offsets).
const Q2_L = 0 // u8[256] the block's levels
const Q2_SCALES = 256 // f32[16]
const Q2_MINS = 320 // f32[16]
const Q2_XT = 384 // v128[2][16] eight sub-blocks' values, transposed (lane k of quad q = sub-block 4q + k)
const Q2_WT = 896 // v128[2][16] their weights |x|
const Q2_LT = 1408 // v128[2][16] the lanes' trial levels
const Q2_WORK = 1920 // v128[2][16] the lanes' x − min, to 2432

/** Four 2-bit levels per byte: L[128h + l + 32k] at bits 2k of qs[32h + l]. */
// @ts-ignore: decorator
@inline function pack2Bit(L: usize, qs: usize): void {
  for (let e: usize = 0; e < 256; e += 128) {
    for (let l: usize = 0; l < 32; l++) {
      const v = <u32>load<u8>(L + e + l) | (<u32>load<u8>(L + e + l + 32) << 2) |
        (<u32>load<u8>(L + e + l + 64) << 4) | (<u32>load<u8>(L + e + l + 96) << 6)
      store<u8>(qs + (e >> 2) + l, <u8>v)
    }
  }
}

/**
 * Q2_K, 84-byte blocks of 256: scales[16], qs[64], f16 d, f16 dmin (quantize_row_q2_K_ref). Each sub-block
 * of 16 is fitted by make_qkx2_quants(16, 3, x, weights |x|, rmin -0.5, rdelta 0.1, nstep 15, use_mad),
 * eight sub-blocks per fit (two quads).
 */
export function quantize_q2_k(src: usize, dst: usize, nblocks: i32, scratch: usize): void {
  const s = scratch
  const L = s + Q2_L
  const scales = s + Q2_SCALES
  const mins = s + Q2_MINS
  for (let b = 0; b < nblocks; b++) {
    const x = src + (<usize>b << 10)
    const y = dst + <usize>b * 84
    // Sub-blocks j0…j0+3 are quad A, j0+4…j0+7 quad B (256 bytes on in each per-element region).
    for (let j0 = 0; j0 < 16; j0 += 8) {
      const xs = x + (<usize>j0 << 6)
      transpose4(16, xs, xs + 64, xs + 128, xs + 192, s + Q2_XT)
      transpose4(16, xs + 256, xs + 320, xs + 384, xs + 448, s + Q2_XT + 256)
      for (let i = 0; i < 32; i++) {
        v128.store(s + Q2_WT + (<usize>i << 4), f32x4.abs(v128.load(s + Q2_XT + (<usize>i << 4))))
      }
      fitAsym8(16, 3, s + Q2_XT, s + Q2_WT, s + Q2_LT, L + (<usize>j0 << 4), 16, mins + (<usize>j0 << 2),
        scales + (<usize>j0 << 2), s + Q2_WORK, -0.5, ONE_TENTH, 15, true)
    }
    let maxScale: f32 = 0
    let maxMin: f32 = 0
    for (let j = 0; j < 16; j++) {
      const scale = load<f32>(scales + (<usize>j << 2))
      const theMin = load<f32>(mins + (<usize>j << 2))
      if (scale > maxScale) maxScale = scale
      if (theMin > maxMin) maxMin = theMin
    }
    let dBits: u32 = 0
    if (maxScale > 0) {
      const iscale: f32 = <f32>15 / maxScale
      for (let j = 0; j < 16; j++) store<u8>(y + <usize>j, <u8>nearestInt(iscale * load<f32>(scales + (<usize>j << 2))))
      dBits = f32ToF16(maxScale / 15)
    } else {
      memory.fill(y, 0, 16)
    }
    let dminBits: u32 = 0
    if (maxMin > 0) {
      const iscale: f32 = <f32>15 / maxMin
      for (let j = 0; j < 16; j++) {
        const l = nearestInt(iscale * load<f32>(mins + (<usize>j << 2)))
        store<u8>(y + <usize>j, load<u8>(y + <usize>j) | <u8>(l << 4))
      }
      dminBits = f32ToF16(maxMin / 15)
    }
    store<u16>(y, <u16>dBits, 80)
    store<u16>(y, <u16>dminBits, 82)
    const dAll = f16ToF32Scalar(dBits)
    const dminAll = f16ToF32Scalar(dminBits)
    for (let j = 0; j < 16; j++) {
      const sc = <u32>load<u8>(y + <usize>j)
      const d = dAll * <f32>(sc & 0xf)
      if (d == 0) continue
      asymmetricLevels(16, x + (<usize>j << 6), d, dminAll * <f32>(sc >> 4), 3, L + (<usize>j << 4))
    }
    pack2Bit(L, y + 16)
  }
}

// Q3_K's scratch layout (byte offsets).
const Q3_L = 0 // u8[256] the block's levels
const Q3_SCALES = 256 // f32[16]
const Q3_XT = 320 // v128[16] four sub-blocks' values, transposed (lane k = sub-block k)
const Q3_LT = 576 // v128[16] the lanes' levels

/**
 * Q3_K, 110-byte blocks of 256: hmask[32], qs[64], scales[12], f16 d (quantize_row_q3_K_ref). Each
 * sub-block of 16 is fitted by make_q3_quants(16, 4, x, L, do_rmse = true), four sub-blocks per vector.
 */
export function quantize_q3_k(src: usize, dst: usize, nblocks: i32, scratch: usize): void {
  const s = scratch
  const L = s + Q3_L
  const scales = s + Q3_SCALES
  for (let b = 0; b < nblocks; b++) {
    const x = src + (<usize>b << 10)
    const y = dst + <usize>b * 110
    const packed = y + 96
    for (let j0 = 0; j0 < 16; j0 += 4) {
      const xs = x + (<usize>j0 << 6)
      transpose4(16, xs, xs + 64, xs + 128, xs + 192, s + Q3_XT)
      v128.store(scales + (<usize>j0 << 2), fitQ3Lanes(s + Q3_XT, s + Q3_LT, L + (<usize>j0 << 4), 16))
    }
    let maxScale: f32 = 0
    let amax: f32 = 0
    for (let j = 0; j < 16; j++) {
      const scale = load<f32>(scales + (<usize>j << 2))
      if (abs<f32>(scale) > amax) {
        amax = abs<f32>(scale)
        maxScale = scale
      }
    }
    memory.fill(packed, 0, 12)
    let dBits: u32 = 0
    if (maxScale != 0) {
      const iscale: f32 = <f32>-32 / maxScale
      for (let j = 0; j < 16; j++) {
        const l = max<i32>(-32, min<i32>(31, <i32><i8>nearestInt(iscale * load<f32>(scales + (<usize>j << 2))))) + 32
        if (j < 8) store<u8>(packed + <usize>j, <u8>(l & 0xf))
        else store<u8>(packed + <usize>(j - 8), load<u8>(packed + <usize>(j - 8)) | <u8>((l & 0xf) << 4))
        const at = packed + 8 + <usize>(j & 3)
        store<u8>(at, load<u8>(at) | <u8>((l >> 4) << (2 * (j >> 2))))
      }
      dBits = f32ToF16(1 / iscale)
    }
    store<u16>(y, <u16>dBits, 108)
    const dAll = f16ToF32Scalar(dBits)
    for (let j = 0; j < 16; j++) {
      const d = dAll * <f32>(q3kScale(packed, j) - 32)
      // C keeps the fit's levels when d is 0; they are already in L.
      if (d == 0) continue
      symmetricLevels16(x + (<usize>j << 6), d, 4, L + (<usize>j << 4))
    }
    packQ3K(L, y)
  }
}
