// f32 -> GGUF block types Q8_0, Q4_0, Q4_K, Q6_K, byte-exact with llama.cpp's quantize_row_*_ref.
// Twin: kernels/reference/ggml-quantize.ts, which explains the rounding rules (plain f32 operations in
// llama.cpp's order, nearest_int's magic-number rounding, RNE fp16 scales, x86 cast semantics). Only
// the absmax searches use SIMD, where the lane order cannot change the result; the scale searches are
// scalar f32 in exactly the twin's order (Binaryen does no fast-math, so nothing is fused or reordered).
//
// The kernels allocate nothing, and static scratch would be shared by every thread, so the K-quants
// need no per-element buffers: a fit's levels are recomputed from the winning trial's (iscale, min)
// instead of being copied around, and the sub-block scales wait in the output block's quant area until
// the packed scales are written (the quants are written after that).

import { f16ToF32Scalar } from './convert'

const GROUP_MAX_EPS: f32 = 1e-15
const ONE_TENTH: f32 = 0.1
const ROUNDING_MAGIC: f32 = 12582912.0 // 1.5 * 2^23, see nearestInt

// Results of the last fitAsymmetric / fitSymmetric call. Wasm globals belong to one instance, i.e. one
// thread, and are read right after the call that sets them: no state survives between kernel calls.
let fitMin: f32 = 0 // make_qkx2_quants' `min` (the offset is -fitMin)
let fitIscale: f32 = 0 // the trial scale whose levels won
let fitLevelMin: f32 = 0 // the `min` those levels were computed with
let fitFlat: bool = false // no fit (flat or all-zero group): every level is 0

/** llama.cpp's nearest_int: round half to even for |x| < 2^22 via the mantissa of x + 1.5 * 2^23; NaN gives 0. */
// @ts-ignore: decorator
@inline export function nearestInt(x: f32): i32 {
  if (x != x) return 0
  return <i32>(reinterpret<u32>(x + ROUNDING_MAGIC) & 0x7fffff) - 0x400000
}

/** C's roundf: halves away from zero. x - trunc(x) is exact in f32. */
// @ts-ignore: decorator
@inline export function roundHalfAway(x: f32): f32 {
  const t = trunc<f32>(x)
  return abs<f32>(x - t) >= 0.5 ? t + copysign<f32>(1, x) : t
}

/** A C float -> int cast as x86-64 does it (cvttss2si): NaN and out-of-range values give INT_MIN. */
// @ts-ignore: decorator
@inline export function castToInt32(x: f32): i32 {
  return x >= -2147483648.0 && x < 2147483648.0 ? <i32>x : i32.MIN_VALUE
}

/** value >> shift (1 <= shift <= 24), rounded to nearest, ties to even. */
// @ts-ignore: decorator
@inline function roundShiftRightEven(value: u32, shift: u32): u32 {
  const kept = value >> shift
  const dropped = value & ((1 << shift) - 1)
  const half: u32 = 1 << (shift - 1)
  return kept + <u32>(dropped > half || (dropped == half && (kept & 1) != 0))
}

/** IEEE binary16 bits of x, round to nearest even; NaN -> sign | 0x7e00 (ggml's encoder). Twin: f32ToF16Bits. */
// @ts-ignore: decorator
@inline export function f32ToF16(x: f32): u32 {
  const bits = reinterpret<u32>(x)
  const sign = (bits >> 16) & 0x8000
  const magnitude = bits & 0x7fffffff
  if (magnitude > 0x7f800000) return sign | 0x7e00
  if (magnitude >= 0x477ff000) return sign | 0x7c00
  const exponent = magnitude >> 23
  if (exponent < 113) {
    const shift = 126 - exponent
    if (shift > 24) return sign
    return sign | roundShiftRightEven((magnitude & 0x7fffff) | 0x800000, shift)
  }
  const truncated = ((exponent - 112) << 10) | ((magnitude >> 13) & 0x3ff)
  const dropped = magnitude & 0x1fff
  return sign | (truncated + <u32>(dropped > 0x1000 || (dropped == 0x1000 && (truncated & 1) != 0)))
}

/** dst u16[n] = fp16 bits of src f32[n] (round to nearest even). */
export function encode_f16(src: usize, dst: usize, n: i32): void {
  for (let i = 0; i < n; i++) store<u16>(dst + (<usize>i << 1), <u16>f32ToF16(load<f32>(src + (<usize>i << 2))))
}

/**
 * max |x| over 32 f32 at x with C's MAX(amax, |v|) semantics. Without NaN, max is order-free, so lanes
 * may run in parallel (pmax, which returns its first operand on ties; all lanes are >= +0); with a NaN the
 * sequential rule (a NaN replaces amax, the next value replaces a NaN) is replayed in scalar.
 */
// @ts-ignore: decorator
@inline function absmax32(x: usize): f32 {
  let acc = f32x4.splat(0)
  let nan = i32x4.splat(0)
  for (let j = 0; j < 128; j += 16) {
    const v = v128.load(x + <usize>j)
    acc = f32x4.pmax(acc, f32x4.abs(v))
    nan = v128.or(nan, f32x4.ne(v, v))
  }
  if (v128.any_true(nan)) {
    let amax: f32 = 0
    for (let j = 0; j < 32; j++) {
      const a = abs<f32>(load<f32>(x + (<usize>j << 2)))
      amax = amax > a ? amax : a
    }
    return amax
  }
  return max(max(f32x4.extract_lane(acc, 0), f32x4.extract_lane(acc, 1)), max(f32x4.extract_lane(acc, 2), f32x4.extract_lane(acc, 3)))
}

/** Q8_0, 34-byte blocks of 32 (f16 d, int8 qs[32]): d = absmax / 127, q = roundf(x * (1 / d)). */
export function quantize_q8_0(src: usize, dst: usize, nblocks: i32): void {
  for (let b = 0; b < nblocks; b++) {
    const x = src + (<usize>b << 7)
    const y = dst + <usize>b * 34
    const d: f32 = absmax32(x) / 127
    const id: f32 = d != 0 ? 1 / d : 0
    store<u16>(y, <u16>f32ToF16(d))
    for (let j = 0; j < 32; j++) {
      store<u8>(y + 2 + <usize>j, <u8>castToInt32(roundHalfAway(load<f32>(x + (<usize>j << 2)) * id)))
    }
  }
}

/** Q4_0, 18-byte blocks of 32 (f16 d, qs[16]): d = m / -8 (m: first element of largest magnitude). */
export function quantize_q4_0(src: usize, dst: usize, nblocks: i32): void {
  for (let b = 0; b < nblocks; b++) {
    const x = src + (<usize>b << 7)
    const y = dst + <usize>b * 18
    // C keeps the first v with amax < |v| strictly; a NaN never passes that test, and pmax ignores it the
    // same way. So: the lane max, then the first element that reaches it (none if it is 0).
    let acc = f32x4.splat(0)
    for (let j = 0; j < 128; j += 16) acc = f32x4.pmax(acc, f32x4.abs(v128.load(x + <usize>j)))
    const amax = max(max(f32x4.extract_lane(acc, 0), f32x4.extract_lane(acc, 1)), max(f32x4.extract_lane(acc, 2), f32x4.extract_lane(acc, 3)))
    let m: f32 = 0
    if (amax > 0) {
      for (let j = 0; j < 32; j++) {
        const v = load<f32>(x + (<usize>j << 2))
        if (abs<f32>(v) == amax) { m = v; break }
      }
    }
    const d: f32 = m / -8
    const id: f32 = d != 0 ? 1 / d : 0
    store<u16>(y, <u16>f32ToF16(d))
    for (let j = 0; j < 16; j++) {
      const low = min<i32>(15, <i8>castToInt32(load<f32>(x + (<usize>j << 2)) * id + <f32>8.5))
      const high = min<i32>(15, <i8>castToInt32(load<f32>(x + (<usize>(j + 16) << 2)) * id + <f32>8.5))
      store<u8>(y + 2 + <usize>j, <u8>((low & 0xff) | (high << 4)))
    }
  }
}

/**
 * make_qkx2_quants(32, nmax, x, weights = rms(x) + |x|, rmin, rdelta 0.1, nstep, squared error), with
 * (nmax, rmin, nstep) = (15, -1, 20) for Q4_K and (31, -0.5, 15) for Q5_K: returns the scale, sets fitMin
 * and the winning levels' (fitIscale, fitLevelMin), or fitFlat. The weights are recomputed where used
 * (the same f32 sum each time) instead of stored.
 */
function fitAsymmetric(x: usize, nmax: i32, rmin: f32, nstep: i32): f32 {
  let sumX2: f32 = 0
  for (let l = 0; l < 32; l++) {
    const v = load<f32>(x + (<usize>l << 2))
    sumX2 += v * v
  }
  const avX = sqrt<f32>(sumX2 / 32)
  let lo = load<f32>(x)
  let hi = lo
  let sumW: f32 = avX + abs<f32>(lo)
  let sumX: f32 = sumW * lo
  for (let i = 1; i < 32; i++) {
    const v = load<f32>(x + (<usize>i << 2))
    if (v < lo) lo = v
    if (v > hi) hi = v
    const w = avX + abs<f32>(v)
    sumW += w
    sumX += w * v
  }
  if (lo > 0) lo = 0
  if (hi == lo) {
    fitFlat = true
    fitMin = lo
    return 0
  }
  fitFlat = false
  let iscale: f32 = <f32>nmax / (hi - lo)
  let scale: f32 = 1 / iscale
  let bestError: f32 = 0
  for (let i = 0; i < 32; i++) {
    const v = load<f32>(x + (<usize>i << 2))
    const l = <f32>max<i32>(0, min<i32>(nmax, nearestInt(iscale * (v - lo))))
    const diff = scale * l + lo - v
    bestError += (avX + abs<f32>(v)) * (diff * diff)
  }
  fitIscale = iscale
  fitLevelMin = lo
  for (let is = 0; is <= nstep; is++) {
    iscale = (rmin + ONE_TENTH * <f32>is + <f32>nmax) / (hi - lo)
    let sumL: f32 = 0
    let sumL2: f32 = 0
    let sumXL: f32 = 0
    for (let i = 0; i < 32; i++) {
      const v = load<f32>(x + (<usize>i << 2))
      const l = <f32>max<i32>(0, min<i32>(nmax, nearestInt(iscale * (v - lo))))
      const wl = (avX + abs<f32>(v)) * l
      sumL += wl
      sumL2 += wl * l
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
      for (let i = 0; i < 32; i++) {
        const v = load<f32>(x + (<usize>i << 2))
        const l = <f32>max<i32>(0, min<i32>(nmax, nearestInt(iscale * (v - lo))))
        const diff = thisScale * l + thisMin - v
        curError += (avX + abs<f32>(v)) * (diff * diff)
      }
      if (curError < bestError) {
        fitIscale = iscale
        fitLevelMin = lo
        bestError = curError
        scale = thisScale
        lo = thisMin
      }
    }
  }
  fitMin = lo
  return scale
}

/** Level i (0..nmax) of the last fitAsymmetric on x. */
// @ts-ignore: decorator
@inline function asymmetricLevel(x: usize, i: i32, nmax: i32): i32 {
  if (fitFlat) return 0
  return max<i32>(0, min<i32>(nmax, nearestInt(fitIscale * (load<f32>(x + (<usize>i << 2)) - fitLevelMin))))
}

/** Q4_K's 6-bit scale and min of sub-block j from the 12 packed bytes (get_scale_min_k4). */
// @ts-ignore: decorator
@inline function packedScale(p: usize, j: i32): u32 {
  if (j < 4) return <u32>load<u8>(p + <usize>j) & 63
  return (<u32>load<u8>(p + <usize>(j + 4)) & 0xf) | ((<u32>load<u8>(p + <usize>(j - 4)) >> 6) << 4)
}

// @ts-ignore: decorator
@inline function packedMin(p: usize, j: i32): u32 {
  if (j < 4) return <u32>load<u8>(p + <usize>(j + 4)) & 63
  return (<u32>load<u8>(p + <usize>(j + 4)) >> 4) | ((<u32>load<u8>(p + <usize>j) >> 6) << 4)
}

/**
 * Q4_K (144-byte blocks of 256: f16 d, f16 dmin, scales[12], qs[128]) and Q5_K (176 bytes: the same plus
 * qh[32] before qs, holding each level's fifth bit: bit j of qh[i] for element i of sub-block j):
 * quantize_row_q4_K_ref / quantize_row_q5_K_ref.
 */
function quantizeK(src: usize, dst: usize, nblocks: i32, nmax: i32, rmin: f32, nstep: i32, blockBytes: i32): void {
  const five = nmax == 31
  for (let b = 0; b < nblocks; b++) {
    const x = src + (<usize>b << 10)
    const y = dst + <usize>b * <usize>blockBytes
    const packed = y + 4
    const qh = y + 16
    const qs = five ? y + 48 : y + 16
    // qs holds the eight f32 scales (qs + 4j) and mins (qs + 32 + 4j) until the packed scales are written.
    let maxScale: f32 = 0
    let maxMin: f32 = 0
    for (let j = 0; j < 8; j++) {
      const scale = fitAsymmetric(x + (<usize>j << 7), nmax, rmin, nstep)
      const theMin = -fitMin
      store<f32>(qs + (<usize>j << 2), scale)
      store<f32>(qs + 32 + (<usize>j << 2), theMin)
      if (scale > maxScale) maxScale = scale
      if (theMin > maxMin) maxMin = theMin
    }
    const invScale: f32 = maxScale > 0 ? <f32>63 / maxScale : 0
    const invMin: f32 = maxMin > 0 ? <f32>63 / maxMin : 0
    memory.fill(packed, 0, 12)
    for (let j = 0; j < 8; j++) {
      const ls = min<u32>(63, <u32>nearestInt(invScale * load<f32>(qs + (<usize>j << 2))) & 0xff)
      const lm = min<u32>(63, <u32>nearestInt(invMin * load<f32>(qs + 32 + (<usize>j << 2))) & 0xff)
      if (j < 4) {
        store<u8>(packed + <usize>j, <u8>ls)
        store<u8>(packed + <usize>(j + 4), <u8>lm)
      } else {
        store<u8>(packed + <usize>(j + 4), <u8>((ls & 0xf) | ((lm & 0xf) << 4)))
        store<u8>(packed + <usize>(j - 4), load<u8>(packed + <usize>(j - 4)) | <u8>((ls >> 4) << 6))
        store<u8>(packed + <usize>j, load<u8>(packed + <usize>j) | <u8>((lm >> 4) << 6))
      }
    }
    const dBits = f32ToF16(maxScale / 63)
    const dminBits = f32ToF16(maxMin / 63)
    store<u16>(y, <u16>dBits)
    store<u16>(y, <u16>dminBits, 2)
    const dAll = f16ToF32Scalar(dBits)
    const dminAll = f16ToF32Scalar(dminBits)
    memory.fill(qs, 0, 128)
    if (five) memory.fill(qh, 0, 32)
    for (let j = 0; j < 8; j++) {
      const sub = x + (<usize>j << 7)
      // Sub-block j: byte 32 * (j / 2) + i, low nibble for even j, high for odd.
      const out = qs + (<usize>(j >> 1) << 5)
      const shift = (j & 1) << 2
      const d = dAll * <f32>packedScale(packed, j)
      const dm = dminAll * <f32>packedMin(packed, j)
      // C keeps the fit's levels when d is 0; refit to get them back (rare: a scale that rounds to 0).
      if (d == 0) fitAsymmetric(sub, nmax, rmin, nstep)
      for (let i = 0; i < 32; i++) {
        const l = d == 0 ? asymmetricLevel(sub, i, nmax) : max<i32>(0, min<i32>(nmax, nearestInt((load<f32>(sub + (<usize>i << 2)) + dm) / d)))
        store<u8>(out + <usize>i, load<u8>(out + <usize>i) | <u8>((l & 15) << shift))
        if (l > 15) store<u8>(qh + <usize>i, <u8>(<u32>load<u8>(qh + <usize>i) | (<u32>1 << <u32>j)))
      }
    }
  }
}

export function quantize_q4_k(src: usize, dst: usize, nblocks: i32): void {
  quantizeK(src, dst, nblocks, 15, -1, 20, 144)
}

export function quantize_q5_k(src: usize, dst: usize, nblocks: i32): void {
  quantizeK(src, dst, nblocks, 31, -0.5, 15, 176)
}

/**
 * make_qx_quants(16, 32, x, rmse_type 1, no importance weights): the scale of the best of 19 symmetric
 * grids (levels -32..31, weights x²); sets fitIscale to the winning grid's inverse scale, or fitFlat.
 */
function fitSymmetric(x: usize): f32 {
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
    fitFlat = true
    return 0
  }
  fitFlat = false
  let iscale: f32 = <f32>-32 / top
  let sumlx: f32 = 0
  let suml2: f32 = 0
  for (let i = 0; i < 16; i++) {
    const v = load<f32>(x + (<usize>i << 2))
    const l = <f32>max<i32>(-32, min<i32>(31, nearestInt(iscale * v)))
    const w = v * v
    sumlx += w * v * l
    suml2 += w * l * l
  }
  let scale: f32 = suml2 != 0 ? sumlx / suml2 : 0
  let best = scale * sumlx
  fitIscale = iscale
  for (let is = -9; is <= 9; is++) {
    if (is == 0) continue
    iscale = -(<f32>32 + ONE_TENTH * <f32>is) / top
    sumlx = 0
    suml2 = 0
    for (let i = 0; i < 16; i++) {
      const v = load<f32>(x + (<usize>i << 2))
      const l = <f32>max<i32>(-32, min<i32>(31, nearestInt(iscale * v)))
      const w = v * v
      sumlx += w * v * l
      suml2 += w * l * l
    }
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      fitIscale = iscale
      scale = sumlx / suml2
      best = scale * sumlx
    }
  }
  return scale
}

/** Stores 6-bit level L of element e (0..255) into the Q6_K block at y (ql/qh zeroed beforehand). */
// @ts-ignore: decorator
@inline function storeQ6Level(y: usize, e: i32, L: i32): void {
  const half = e >> 7
  const k = (e >> 5) & 3
  const l = e & 31
  const ql = y + <usize>((half << 6) + l + ((k & 1) << 5))
  const qh = y + 128 + <usize>((half << 5) + l)
  store<u8>(ql, load<u8>(ql) | <u8>((L & 0xf) << ((k >> 1) << 2)))
  store<u8>(qh, load<u8>(qh) | <u8>((L >> 4) << (k << 1)))
}

/** Q6_K, 210-byte blocks of 256: ql[128], qh[64], int8 scales[16], f16 d (quantize_row_q6_K_ref). */
export function quantize_q6_k(src: usize, dst: usize, nblocks: i32): void {
  for (let b = 0; b < nblocks; b++) {
    const x = src + (<usize>b << 10)
    const y = dst + <usize>b * 210
    const scales = y + 192
    // ql holds the sixteen f32 sub-block scales (y + 4 * ib) until the int8 scales are written.
    let maxScale: f32 = 0
    let maxAbsScale: f32 = 0
    for (let ib = 0; ib < 16; ib++) {
      const scale = fitSymmetric(x + (<usize>ib << 6))
      store<f32>(y + (<usize>ib << 2), scale)
      if (abs<f32>(scale) > maxAbsScale) {
        maxAbsScale = abs<f32>(scale)
        maxScale = scale
      }
    }
    if (maxAbsScale < GROUP_MAX_EPS) {
      memory.fill(y, 0, 210)
      continue
    }
    const iscale: f32 = <f32>-128 / maxScale
    const dBits = f32ToF16(1 / iscale)
    store<u16>(y, <u16>dBits, 208)
    for (let ib = 0; ib < 16; ib++) {
      store<i8>(scales + <usize>ib, <i8>min<i32>(127, nearestInt(iscale * load<f32>(y + (<usize>ib << 2)))))
    }
    const dAll = f16ToF32Scalar(dBits)
    memory.fill(y, 0, 192)
    for (let j = 0; j < 16; j++) {
      const sub = x + (<usize>j << 6)
      const d = dAll * <f32>load<i8>(scales + <usize>j)
      if (d == 0) {
        // C keeps the fit's levels here; refit to get them back.
        fitSymmetric(sub)
        for (let i = 0; i < 16; i++) {
          const L = fitFlat ? 0 : 32 + max<i32>(-32, min<i32>(31, nearestInt(fitIscale * load<f32>(sub + (<usize>i << 2)))))
          storeQ6Level(y, (j << 4) + i, L)
        }
        continue
      }
      for (let i = 0; i < 16; i++) {
        const l = max<i32>(-32, min<i32>(31, nearestInt(load<f32>(sub + (<usize>i << 2)) / d)))
        storeQ6Level(y, (j << 4) + i, l + 32)
      }
    }
  }
}
