// Reference twin of kernels/assembly/ggml-quantize.ts: f32 -> the GGUF block types Q8_0, Q4_0, Q4_K, Q6_K,
// byte-exact with llama.cpp's reference quantizers (ggml-quants.c quantize_row_*_ref; llama-quantize uses
// those whenever no importance matrix is given). Block layouts: DEQUANT_BLOCKS in ./ggml-dequant.
//
// Byte-exactness rests on three things, all checked against llama.cpp's own output in the golden test:
// - f32 arithmetic rounded after every operation, in llama.cpp's operation order (C evaluates a*b*c as
//   (a*b)*c and a+b-c as (a+b)-c). `f32(a op b)` below is one f64 operation rounded once, which equals
//   the f32 operation for + - * / and sqrt;
// - the same rounding functions: C's roundf (halves away from zero) for Q8_0, a truncating cast for Q4_0,
//   and the K-quants' `nearest_int`, which adds 1.5 * 2^23 in f32 and reads the integer out of the
//   mantissa: round-half-to-even for |x| < 2^22, reproduced here bit for bit (see nearestInt);
// - fp16 scales encoded with round-to-nearest-even (f32ToF16Bits), as ggml's software encoder does.
//
// Float -> integer casts of NaN or of values outside the integer's range are undefined in C. Here (and in
// the kernel) they behave as llama.cpp's x86-64 build does: the value goes through a 32-bit cvttss2si,
// which gives INT_MIN for NaN and out-of-range values, and the int8/uint8 store keeps the low byte.
// Such values arise only from NaN/Inf inputs or from scales that overflow (subnormal blocks).

import { DEQUANT_BLOCKS, type DequantType } from './ggml-dequant'
import { f16ToF32 } from './convert'

const f32 = Math.fround

export type QuantType = DequantType

/** Elements and bytes per block of every type quantized here (the same table the dequantizers use). */
export const QUANT_BLOCKS = DEQUANT_BLOCKS

const QK_K = 256
/** ggml's GROUP_MAX_EPS: a group whose largest magnitude is below this is treated as all zero. */
const GROUP_MAX_EPS = f32(1e-15)
const ONE_TENTH = f32(0.1)
/** 1.5 * 2^23: adding it to |x| < 2^22 leaves round(x) + 2^22 in the low 23 mantissa bits. */
const ROUNDING_MAGIC = 12582912

const scratchF32 = new Float32Array(1)
const scratchU32 = new Uint32Array(scratchF32.buffer)

function f32Bits(x: number): number {
  scratchF32[0] = x
  return scratchU32[0]
}

/**
 * IEEE binary16 bits of x, rounded to nearest, ties to even. Overflow (|x| >= 65520) gives ±Inf, values
 * below half the smallest subnormal give ±0, and NaN gives the quiet NaN 0x7e00 with x's sign (what
 * ggml's software encoder writes). x is rounded to f32 first, as a C float argument would be.
 */
export function f32ToF16Bits(x: number): number {
  const bits = f32Bits(x)
  const sign = (bits >>> 16) & 0x8000
  const magnitude = bits & 0x7fffffff
  if (magnitude > 0x7f800000) return sign | 0x7e00
  if (magnitude >= 0x477ff000) return sign | 0x7c00 // 65520 = 65504 + half an ulp: the tie goes to the even Inf
  const exponent = magnitude >>> 23
  if (exponent < 113) {
    // Below 2^-14: a subnormal half, i.e. an integer count of 2^-24. The f32 significand (implicit bit
    // included) times 2^(exponent - 150) is value; in units of 2^-24 that is significand >> (126 - exponent).
    const shift = 126 - exponent
    if (shift > 24) return sign // below 2^-25 (the tie at 2^-25 itself rounds to even, i.e. 0)
    const significand = (magnitude & 0x7fffff) | 0x800000
    return sign | roundShiftRightEven(significand, shift)
  }
  // Normal: rebias the exponent (127 -> 15) and drop 13 mantissa bits. A carry out of the mantissa moves
  // into the exponent, which is the correctly rounded result (up to 0x7bff; larger values returned above).
  const truncated = ((exponent - 112) << 10) | ((magnitude >>> 13) & 0x3ff)
  const dropped = magnitude & 0x1fff
  const roundUp = dropped > 0x1000 || (dropped === 0x1000 && (truncated & 1) === 1)
  return sign | (truncated + (roundUp ? 1 : 0))
}

/** value >> shift (1 <= shift <= 24), rounded to nearest with ties to even. */
function roundShiftRightEven(value: number, shift: number): number {
  const kept = value >>> shift
  const dropped = value & ((1 << shift) - 1)
  const half = 1 << (shift - 1)
  return kept + (dropped > half || (dropped === half && (kept & 1) === 1) ? 1 : 0)
}

/**
 * llama.cpp's nearest_int: f32(x + 1.5 * 2^23), then (mantissa bits) - 2^22. For |x| < 2^22 this is x
 * rounded half to even; beyond that it is the same garbage the C code computes. NaN gives 0 (in C the
 * result would depend on the NaN's payload, which JS cannot carry).
 */
export function nearestInt(x: number): number {
  if (x !== x) return 0
  return (f32Bits(f32(x + ROUNDING_MAGIC)) & 0x7fffff) - 0x400000
}

/** C's roundf: to nearest, halves away from zero. x is an f32, so |x| + 0.5 is exact in f64. */
export function roundHalfAway(x: number): number {
  return x < 0 ? -Math.floor(-x + 0.5) : Math.floor(x + 0.5)
}

/** A C float -> int cast as x86-64 does it (cvttss2si): truncation; NaN and out-of-range give INT_MIN. */
export function castToInt32(x: number): number {
  return x >= -2147483648 && x < 2147483648 ? Math.trunc(x) : -2147483648
}

export function int8(v: number): number {
  return (v << 24) >> 24
}

/** Writes x as little-endian fp16 at dst[at] and returns the value it decodes to (what ggml reads back). */
export function putF16(dst: Uint8Array, at: number, x: number): number {
  const h = f32ToF16Bits(x)
  dst[at] = h & 0xff
  dst[at + 1] = h >>> 8
  return f16ToF32(h)
}

function checkSizes(type: QuantType, src: Float32Array, nblocks: number, dst: Uint8Array): void {
  const { elements, bytes } = QUANT_BLOCKS[type]
  if (!Number.isSafeInteger(nblocks) || nblocks < 0)
    throw new RangeError(`quantize ${type}: bad block count ${nblocks}`)
  if (src.length < nblocks * elements) {
    throw new RangeError(
      `quantize ${type}: ${nblocks} blocks need ${nblocks * elements} inputs, the source has ${src.length}`,
    )
  }
  if (dst.length < nblocks * bytes) {
    throw new RangeError(
      `quantize ${type}: ${nblocks} blocks need ${nblocks * bytes} bytes, the destination has ${dst.length}`,
    )
  }
}

/** Q8_0 (quantize_row_q8_0_ref): d = absmax / 127, q = roundf(x * (1 / d)). */
export function quantizeQ8_0(src: Float32Array, nblocks: number, dst: Uint8Array): void {
  checkSizes('Q8_0', src, nblocks, dst)
  for (let b = 0; b < nblocks; b++) {
    const x = b * 32
    const at = b * 34
    let amax = 0
    for (let j = 0; j < 32; j++) {
      const a = Math.abs(src[x + j])
      amax = amax > a ? amax : a // C's MAX(amax, a), NaN behaviour included
    }
    const d = f32(amax / 127)
    const id = d !== 0 ? f32(1 / d) : 0 // C tests `d ?`, which is true for NaN
    putF16(dst, at, d)
    for (let j = 0; j < 32; j++) dst[at + 2 + j] = castToInt32(roundHalfAway(f32(src[x + j] * id))) & 0xff
  }
}

/**
 * Q4_0 (quantize_row_q4_0_ref): d = m / -8 for the element m of largest magnitude (the first one on
 * ties), q = min(15, (int8)(x * (1 / d) + 8.5)). Element j goes to the low nibble of byte j, j + 16 to the high one.
 */
export function quantizeQ4_0(src: Float32Array, nblocks: number, dst: Uint8Array): void {
  checkSizes('Q4_0', src, nblocks, dst)
  for (let b = 0; b < nblocks; b++) {
    const x = b * 32
    const at = b * 18
    let amax = 0
    let max = 0
    for (let j = 0; j < 32; j++) {
      const v = src[x + j]
      if (amax < Math.abs(v)) {
        amax = Math.abs(v)
        max = v
      }
    }
    const d = f32(max / -8)
    const id = d !== 0 ? f32(1 / d) : 0
    putF16(dst, at, d)
    for (let j = 0; j < 16; j++) {
      const low = Math.min(15, int8(castToInt32(f32(f32(src[x + j] * id) + 8.5)))) & 0xff
      const high = Math.min(15, int8(castToInt32(f32(f32(src[x + 16 + j] * id) + 8.5)))) & 0xff
      dst[at + 2 + j] = (low | (high << 4)) & 0xff
    }
  }
}

/**
 * make_qkx2_quants: the scale and (negated) offset of an asymmetric nmax-level grid for x[0 .. n),
 * fitted by weighted least squares over nstep+1 trial scales around nmax / (max - min). Writes the
 * chosen levels to L[0 .. n) and returns [scale, theMin] with x ≈ scale * L - theMin.
 */
export function makeQkx2Quants(
  n: number,
  nmax: number,
  x: Float32Array,
  weights: Float32Array,
  L: Uint8Array,
  Laux: Uint8Array,
  rmin: number,
  rdelta: number,
  nstep: number,
  useMad: boolean,
): [scale: number, theMin: number] {
  let min = x[0]
  let max = x[0]
  let sumW = weights[0]
  let sumX = f32(sumW * x[0])
  for (let i = 1; i < n; i++) {
    const v = x[i]
    if (v < min) min = v
    if (v > max) max = v
    const w = weights[i]
    sumW = f32(sumW + w)
    sumX = f32(sumX + f32(w * v))
  }
  if (min > 0) min = 0
  if (max === min) {
    L.fill(0, 0, n)
    return [0, -min]
  }
  let iscale = f32(nmax / f32(max - min))
  let scale = f32(1 / iscale)
  let bestError = 0
  for (let i = 0; i < n; i++) {
    const v = x[i]
    const l = nearestInt(f32(iscale * f32(v - min)))
    L[i] = Math.max(0, Math.min(nmax, l))
    let diff = f32(f32(f32(scale * L[i]) + min) - v)
    diff = useMad ? Math.abs(diff) : f32(diff * diff)
    bestError = f32(bestError + f32(weights[i] * diff))
  }
  if (nstep < 1) return [scale, -min]
  for (let is = 0; is <= nstep; is++) {
    iscale = f32(f32(f32(rmin + f32(rdelta * is)) + nmax) / f32(max - min))
    let sumL = 0
    let sumL2 = 0
    let sumXL = 0
    for (let i = 0; i < n; i++) {
      const v = x[i]
      const l = Math.max(0, Math.min(nmax, nearestInt(f32(iscale * f32(v - min)))))
      Laux[i] = l
      const wl = f32(weights[i] * l)
      sumL = f32(sumL + wl)
      sumL2 = f32(sumL2 + f32(wl * l))
      sumXL = f32(sumXL + f32(wl * v))
    }
    const D = f32(f32(sumW * sumL2) - f32(sumL * sumL))
    if (D > 0) {
      let thisScale = f32(f32(f32(sumW * sumXL) - f32(sumX * sumL)) / D)
      let thisMin = f32(f32(f32(sumL2 * sumX) - f32(sumL * sumXL)) / D)
      if (thisMin > 0) {
        thisMin = 0
        thisScale = f32(sumXL / sumL2)
      }
      let curError = 0
      for (let i = 0; i < n; i++) {
        let diff = f32(f32(f32(thisScale * Laux[i]) + thisMin) - x[i])
        diff = useMad ? Math.abs(diff) : f32(diff * diff)
        curError = f32(curError + f32(weights[i] * diff))
      }
      if (curError < bestError) {
        L.set(Laux.subarray(0, n))
        bestError = curError
        scale = thisScale
        min = thisMin
      }
    }
  }
  return [scale, -min]
}

/** What separates Q5_K from Q4_K: one more bit per level (in qh), and the fit's search range. */
interface KQuantShape {
  nmax: number
  rmin: number
  nstep: number
  blockBytes: number
}
const Q4_K_SHAPE: KQuantShape = { nmax: 15, rmin: -1, nstep: 20, blockBytes: 144 }
const Q5_K_SHAPE: KQuantShape = { nmax: 31, rmin: -0.5, nstep: 15, blockBytes: 176 }

/**
 * Q4_K and Q5_K (quantize_row_q4_K_ref / quantize_row_q5_K_ref): per 32-element sub-block an asymmetric
 * 4- or 5-bit fit (make_qkx2_quants with weights rms + |x|), then the eight scales and eight mins are
 * themselves quantized to 6 bits against the superblock's d = max scale / 63 and dmin = max min / 63, and
 * x is requantized with those. Layout: d, dmin (fp16), 12 packed scale bytes, [Q5_K: 32 bytes of high
 * bits,] then the low nibbles.
 */
function quantizeKBlocks(
  type: 'Q4_K' | 'Q5_K',
  shape: KQuantShape,
  src: Float32Array,
  nblocks: number,
  dst: Uint8Array,
): void {
  checkSizes(type, src, nblocks, dst)
  const { nmax, rmin, nstep, blockBytes } = shape
  const L = new Uint8Array(QK_K)
  const Laux = new Uint8Array(32)
  const weights = new Float32Array(32)
  const scales = new Float32Array(8)
  const mins = new Float32Array(8)
  for (let b = 0; b < nblocks; b++) {
    const x = b * QK_K
    const at = b * blockBytes
    const packed = at + 4
    let maxScale = 0
    let maxMin = 0
    for (let j = 0; j < 8; j++) {
      const sub = x + 32 * j
      let sumX2 = 0
      for (let l = 0; l < 32; l++) sumX2 = f32(sumX2 + f32(src[sub + l] * src[sub + l]))
      const avX = f32(Math.sqrt(f32(sumX2 / 32)))
      for (let l = 0; l < 32; l++) weights[l] = f32(avX + Math.abs(src[sub + l]))
      const [scale, min] = makeQkx2Quants(
        32,
        nmax,
        src.subarray(sub, sub + 32),
        weights,
        L.subarray(32 * j, 32 * j + 32),
        Laux,
        rmin,
        ONE_TENTH,
        nstep,
        false,
      )
      scales[j] = scale
      mins[j] = min
      if (scale > maxScale) maxScale = scale
      if (min > maxMin) maxMin = min
    }
    const invScale = maxScale > 0 ? f32(63 / maxScale) : 0
    const invMin = maxMin > 0 ? f32(63 / maxMin) : 0
    dst.fill(0, packed, packed + 12)
    for (let j = 0; j < 8; j++) {
      const ls = Math.min(63, nearestInt(f32(invScale * scales[j])) & 0xff)
      const lm = Math.min(63, nearestInt(f32(invMin * mins[j])) & 0xff)
      if (j < 4) {
        dst[packed + j] = ls
        dst[packed + j + 4] = lm
      } else {
        dst[packed + j + 4] = (ls & 0xf) | ((lm & 0xf) << 4)
        dst[packed + j - 4] |= (ls >> 4) << 6
        dst[packed + j] |= (lm >> 4) << 6
      }
    }
    const dAll = putF16(dst, at, f32(maxScale / 63))
    const dminAll = putF16(dst, at + 2, f32(maxMin / 63))
    for (let j = 0; j < 8; j++) {
      const { scale: sc, min: m } = scaleMinK4(dst, packed, j)
      const d = f32(dAll * sc)
      if (d === 0) continue // the levels from the fit stay (C: `if (!d) continue`, false for NaN)
      const dm = f32(dminAll * m)
      for (let ii = 0; ii < 32; ii++) {
        const l = nearestInt(f32(f32(src[x + 32 * j + ii] + dm) / d))
        L[32 * j + ii] = Math.max(0, Math.min(nmax, l))
      }
    }
    // Each 32 qs bytes hold two sub-blocks: 64g + l in the low nibble, 64g + 32 + l in the high one.
    // Q5_K: the fifth bits go to qh[l], bit 2g for the first sub-block of the pair and 2g + 1 for the second.
    const qh = at + 16
    const qs = type === 'Q5_K' ? at + 48 : at + 16
    if (type === 'Q5_K') dst.fill(0, qh, qh + 32)
    for (let g = 0; g < 4; g++) {
      for (let l = 0; l < 32; l++) {
        let l1 = L[64 * g + l],
          l2 = L[64 * g + 32 + l]
        if (l1 > 15) {
          l1 -= 16
          dst[qh + l] |= 1 << (2 * g)
        }
        if (l2 > 15) {
          l2 -= 16
          dst[qh + l] |= 2 << (2 * g)
        }
        dst[qs + 32 * g + l] = l1 | (l2 << 4)
      }
    }
  }
}

export function quantizeQ4_K(src: Float32Array, nblocks: number, dst: Uint8Array): void {
  quantizeKBlocks('Q4_K', Q4_K_SHAPE, src, nblocks, dst)
}

export function quantizeQ5_K(src: Float32Array, nblocks: number, dst: Uint8Array): void {
  quantizeKBlocks('Q5_K', Q5_K_SHAPE, src, nblocks, dst)
}

/** The 6-bit scale and min of Q4_K sub-block j from the 12 packed bytes at `at` (get_scale_min_k4). */
function scaleMinK4(bytes: Uint8Array, at: number, j: number): { scale: number; min: number } {
  if (j < 4) return { scale: bytes[at + j] & 63, min: bytes[at + j + 4] & 63 }
  return {
    scale: (bytes[at + j + 4] & 0xf) | ((bytes[at + j - 4] >> 6) << 4),
    min: (bytes[at + j + 4] >> 4) | ((bytes[at + j] >> 6) << 4),
  }
}

/**
 * make_qx_quants with rmse_type 1 and no importance weights: a symmetric grid of levels -nmax .. nmax-1
 * for x[0 .. n), trying 19 scales around nmax / max and keeping the one with the best weighted
 * (w = x²) least-squares fit. Writes levels + nmax to L[0 .. n); returns the fitted scale.
 */
function makeQxQuants(n: number, nmax: number, x: Float32Array, L: Uint8Array): number {
  let max = 0
  let amax = 0
  for (let i = 0; i < n; i++) {
    const ax = Math.abs(x[i])
    if (ax > amax) {
      amax = ax
      max = x[i]
    }
  }
  if (amax < GROUP_MAX_EPS) {
    L.fill(0, 0, n)
    return 0
  }
  let iscale = f32(-nmax / max)
  let sumlx = 0
  let suml2 = 0
  for (let i = 0; i < n; i++) {
    const v = x[i]
    const l = Math.max(-nmax, Math.min(nmax - 1, nearestInt(f32(iscale * v))))
    L[i] = l + nmax
    const w = f32(v * v)
    sumlx = f32(sumlx + f32(f32(w * v) * l))
    suml2 = f32(suml2 + f32(f32(w * l) * l))
  }
  let scale = suml2 !== 0 ? f32(sumlx / suml2) : 0
  let best = f32(scale * sumlx)
  for (let is = -9; is <= 9; is++) {
    if (is === 0) continue
    iscale = f32(-f32(nmax + f32(ONE_TENTH * is)) / max)
    sumlx = 0
    suml2 = 0
    for (let i = 0; i < n; i++) {
      const v = x[i]
      const l = Math.max(-nmax, Math.min(nmax - 1, nearestInt(f32(iscale * v))))
      const w = f32(v * v)
      sumlx = f32(sumlx + f32(f32(w * v) * l))
      suml2 = f32(suml2 + f32(f32(w * l) * l))
    }
    if (suml2 > 0 && f32(sumlx * sumlx) > f32(best * suml2)) {
      for (let i = 0; i < n; i++) {
        L[i] = nmax + Math.max(-nmax, Math.min(nmax - 1, nearestInt(f32(iscale * x[i]))))
      }
      scale = f32(sumlx / suml2)
      best = f32(scale * sumlx)
    }
  }
  return scale
}

/**
 * Q6_K (quantize_row_q6_K_ref): per 16-element sub-block a symmetric 6-bit fit (make_qx_quants), the
 * sixteen scales quantized to int8 against d = -(scale of largest magnitude) / 128, then x requantized.
 */
export function quantizeQ6_K(src: Float32Array, nblocks: number, dst: Uint8Array): void {
  checkSizes('Q6_K', src, nblocks, dst)
  const L = new Uint8Array(QK_K)
  const scales = new Float32Array(16)
  for (let b = 0; b < nblocks; b++) {
    const x = b * QK_K
    const at = b * 210
    let maxScale = 0
    let maxAbsScale = 0
    for (let ib = 0; ib < 16; ib++) {
      const scale = makeQxQuants(16, 32, src.subarray(x + 16 * ib, x + 16 * ib + 16), L.subarray(16 * ib, 16 * ib + 16))
      scales[ib] = scale
      const absScale = Math.abs(scale)
      if (absScale > maxAbsScale) {
        maxAbsScale = absScale
        maxScale = scale
      }
    }
    if (maxAbsScale < GROUP_MAX_EPS) {
      dst.fill(0, at, at + 210) // and d = fp16(0), which is 0x0000
      continue
    }
    const iscale = f32(-128 / maxScale)
    const dAll = putF16(dst, at + 208, f32(1 / iscale))
    for (let ib = 0; ib < 16; ib++) dst[at + 192 + ib] = Math.min(127, nearestInt(f32(iscale * scales[ib]))) & 0xff
    for (let j = 0; j < 16; j++) {
      const d = f32(dAll * int8(dst[at + 192 + j]))
      if (d === 0) continue
      for (let ii = 0; ii < 16; ii++) {
        const l = nearestInt(f32(src[x + 16 * j + ii] / d))
        L[16 * j + ii] = Math.max(-32, Math.min(31, l)) + 32
      }
    }
    // Each half (128 elements) uses ql[64], qh[32]: element 128h + 32k + l keeps its low 4 bits in
    // ql[64h + l + 32(k & 1)] (low nibble for k < 2, high for k >= 2) and its top 2 bits at bit 2k of qh[32h + l].
    for (let half = 0; half < 2; half++) {
      const ql = at + 64 * half
      const qh = at + 128 + 32 * half
      const e = 128 * half
      for (let l = 0; l < 32; l++) {
        const q1 = L[e + l],
          q2 = L[e + l + 32],
          q3 = L[e + l + 64],
          q4 = L[e + l + 96]
        dst[ql + l] = (q1 & 0xf) | ((q3 & 0xf) << 4)
        dst[ql + l + 32] = (q2 & 0xf) | ((q4 & 0xf) << 4)
        dst[qh + l] = (q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6)
      }
    }
  }
}

const QUANTIZERS: Readonly<Record<QuantType, (src: Float32Array, nblocks: number, dst: Uint8Array) => void>> = {
  Q8_0: quantizeQ8_0,
  Q4_0: quantizeQ4_0,
  Q4_K: quantizeQ4_K,
  Q5_K: quantizeQ5_K,
  Q6_K: quantizeQ6_K,
}

/** Quantizes `n` elements (a whole number of blocks) of `src` to `type`, into `dst` from byte 0. */
export function quantizeRow(type: QuantType, src: Float32Array, n: number, dst: Uint8Array): void {
  const block = QUANT_BLOCKS[type]
  if (!block) throw new RangeError(`quantize: unsupported block type ${String(type)}`)
  if (!Number.isSafeInteger(n) || n < 0 || n % block.elements !== 0) {
    throw new RangeError(`quantize ${type}: ${n} elements is not a whole number of ${block.elements}-element blocks`)
  }
  QUANTIZERS[type](src, n / block.elements, dst)
}
