// f32 -> the low-bit K-quants Q2_K and Q3_K, byte-exact with llama.cpp's quantize_row_q2_K_ref /
// quantize_row_q3_K_ref. Twin: kernels/reference/ggml-quantize-kquants.ts; rounding rules in
// kernels/reference/ggml-quantize.ts. All arithmetic is scalar f32 in exactly the twin's order (the fits
// are sequential searches; Binaryen neither fuses nor reorders f32 operations).
//
// These kernels take a `scratch` pointer (QUANT_SCRATCH_BYTES of the caller's
// memory, any alignment) for the per-block level and scale arrays, which do not fit in the output block.

import { f16ToF32Scalar } from './convert'
import { f32ToF16, nearestInt } from './ggml-quantize'
import { q3kScale } from './ggml-dequant-kquants'

const GROUP_MAX_EPS: f32 = 1e-15
const ONE_TENTH: f32 = 0.1

// Offset of the last fitQ2's min (make_qkx2_quants' *the_min); read right after the call.
let fitTheMin: f32 = 0

/**
 * make_qkx2_quants(16, 3, x, weights = |x|, L, Laux, rmin -0.5, rdelta 0.1, nstep 15, use_mad = true):
 * levels 0..3 to L[16], returns the scale and sets fitTheMin (x ≈ scale · L − fitTheMin).
 */
function fitQ2(x: usize, L: usize, Laux: usize): f32 {
  let lo = load<f32>(x)
  let hi = lo
  let sumW: f32 = abs<f32>(lo)
  let sumX: f32 = sumW * lo
  for (let i = 1; i < 16; i++) {
    const v = load<f32>(x + (<usize>i << 2))
    if (v < lo) lo = v
    if (v > hi) hi = v
    const w = abs<f32>(v)
    sumW += w
    sumX += w * v
  }
  if (lo > 0) lo = 0
  if (hi == lo) {
    memory.fill(L, 0, 16)
    fitTheMin = -lo
    return 0
  }
  let iscale: f32 = <f32>3 / (hi - lo)
  let scale: f32 = 1 / iscale
  let bestError: f32 = 0
  for (let i = 0; i < 16; i++) {
    const v = load<f32>(x + (<usize>i << 2))
    const l = max<i32>(0, min<i32>(3, nearestInt(iscale * (v - lo))))
    store<u8>(L + <usize>i, <u8>l)
    const diff = abs<f32>(scale * <f32>l + lo - v)
    bestError += abs<f32>(v) * diff
  }
  for (let is = 0; is <= 15; is++) {
    iscale = (<f32>-0.5 + ONE_TENTH * <f32>is + <f32>3) / (hi - lo)
    let sumL: f32 = 0
    let sumL2: f32 = 0
    let sumXL: f32 = 0
    for (let i = 0; i < 16; i++) {
      const v = load<f32>(x + (<usize>i << 2))
      const l = max<i32>(0, min<i32>(3, nearestInt(iscale * (v - lo))))
      store<u8>(Laux + <usize>i, <u8>l)
      const wl = abs<f32>(v) * <f32>l
      sumL += wl
      sumL2 += wl * <f32>l
      sumXL += wl * v
    }
    const D = sumW * sumL2 - sumL * sumL
    if (D > 0) {
      let thisScale = (sumW * sumXL - sumX * sumL) / D
      let thisMin = (sumL2 * sumX - sumL * sumXL) / D
      if (thisMin > 0) {
        thisMin = 0
        thisScale = sumXL / sumL2
      }
      let curError: f32 = 0
      for (let i = 0; i < 16; i++) {
        const v = load<f32>(x + (<usize>i << 2))
        const diff = abs<f32>(thisScale * <f32>load<u8>(Laux + <usize>i) + thisMin - v)
        curError += abs<f32>(v) * diff
      }
      if (curError < bestError) {
        memory.copy(L, Laux, 16)
        bestError = curError
        scale = thisScale
        lo = thisMin
      }
    }
  }
  fitTheMin = -lo
  return scale
}

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

/** Q2_K, 84-byte blocks of 256: scales[16], qs[64], f16 d, f16 dmin (quantize_row_q2_K_ref). */
export function quantize_q2_k(src: usize, dst: usize, nblocks: i32, scratch: usize): void {
  const L = scratch
  const Laux = scratch + 256
  const scales = scratch + 272
  const mins = scratch + 336
  for (let b = 0; b < nblocks; b++) {
    const x = src + (<usize>b << 10)
    const y = dst + <usize>b * 84
    let maxScale: f32 = 0
    let maxMin: f32 = 0
    for (let j = 0; j < 16; j++) {
      const scale = fitQ2(x + (<usize>j << 6), L + (<usize>j << 4), Laux)
      store<f32>(scales + (<usize>j << 2), scale)
      store<f32>(mins + (<usize>j << 2), fitTheMin)
      if (scale > maxScale) maxScale = scale
      if (fitTheMin > maxMin) maxMin = fitTheMin
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
      const dm = dminAll * <f32>(sc >> 4)
      const sub = x + (<usize>j << 6)
      for (let i = 0; i < 16; i++) {
        const l = nearestInt((load<f32>(sub + (<usize>i << 2)) + dm) / d)
        store<u8>(L + <usize>((j << 4) + i), <u8>max<i32>(0, min<i32>(3, l)))
      }
    }
    pack2Bit(L, y + 16)
  }
}

/**
 * make_q3_quants(16, 4, x, L, do_rmse = true): levels -4..3 refined by coordinate descent (int8 working
 * copy at `levels`), written to L as level + 4 (0 for an all-zero group). Returns the scale.
 */
function fitQ3(x: usize, L: usize, levels: usize): f32 {
  let top: f32 = 0
  let amax: f32 = 0
  for (let i = 0; i < 16; i++) {
    const v = load<f32>(x + (<usize>i << 2))
    if (abs<f32>(v) > amax) {
      amax = abs<f32>(v)
      top = v
    }
  }
  if (amax < GROUP_MAX_EPS) {
    memory.fill(L, 0, 16)
    return 0
  }
  const iscale: f32 = <f32>-4 / top
  let sumlx: f32 = 0
  let suml2: f32 = 0
  for (let i = 0; i < 16; i++) {
    const v = load<f32>(x + (<usize>i << 2))
    const l = max<i32>(-4, min<i32>(3, nearestInt(iscale * v)))
    store<i8>(levels + <usize>i, <i8>l)
    const w = v * v
    sumlx += w * v * <f32>l
    suml2 += w * <f32>l * <f32>l
  }
  for (let itry = 0; itry < 5; itry++) {
    let changed = 0
    for (let i = 0; i < 16; i++) {
      const v = load<f32>(x + (<usize>i << 2))
      const w = v * v
      const li = <i32>load<i8>(levels + <usize>i)
      let slx = sumlx - w * v * <f32>li
      if (slx > 0) {
        let sl2 = suml2 - w * <f32>li * <f32>li
        const newL = max<i32>(-4, min<i32>(3, nearestInt(v * sl2 / slx)))
        if (newL != li) {
          slx += w * v * <f32>newL
          sl2 += w * <f32>newL * <f32>newL
          if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
            store<i8>(levels + <usize>i, <i8>newL)
            sumlx = slx
            suml2 = sl2
            changed++
          }
        }
      }
    }
    if (changed == 0) break
  }
  for (let i = 0; i < 16; i++) store<u8>(L + <usize>i, <u8>(<i32>load<i8>(levels + <usize>i) + 4))
  return suml2 > 0 ? sumlx / suml2 : 0
}

/** Q3_K, 110-byte blocks of 256: hmask[32], qs[64], scales[12], f16 d (quantize_row_q3_K_ref). */
export function quantize_q3_k(src: usize, dst: usize, nblocks: i32, scratch: usize): void {
  const L = scratch
  const levels = scratch + 256
  const scales = scratch + 272
  for (let b = 0; b < nblocks; b++) {
    const x = src + (<usize>b << 10)
    const y = dst + <usize>b * 110
    const packed = y + 96
    let maxScale: f32 = 0
    let amax: f32 = 0
    for (let j = 0; j < 16; j++) {
      const scale = fitQ3(x + (<usize>j << 6), L + (<usize>j << 4), levels)
      store<f32>(scales + (<usize>j << 2), scale)
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
      if (d == 0) continue
      const sub = x + (<usize>j << 6)
      for (let i = 0; i < 16; i++) {
        const l = nearestInt(load<f32>(sub + (<usize>i << 2)) / d)
        store<u8>(L + <usize>((j << 4) + i), <u8>(max<i32>(-4, min<i32>(3, l)) + 4))
      }
    }
    memory.fill(y, 0, 32)
    for (let e = 0; e < 256; e++) {
      const l = <u32>load<u8>(L + <usize>e)
      if (l > 3) {
        const at = y + <usize>(e & 31)
        store<u8>(at, <u8>(<u32>load<u8>(at) | (<u32>1 << <u32>(e >> 5))))
        store<u8>(L + <usize>e, <u8>(l - 4))
      }
    }
    pack2Bit(L, y + 32)
  }
}
