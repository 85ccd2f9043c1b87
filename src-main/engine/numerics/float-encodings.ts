// Scalar float encodings: IEEE binary16 (fp16), bfloat16 and the OCP FP8 formats (E4M3FN, E5M2), each way.
// The one home of these for the engine: formats, compress and export import them from here.
//
// Decoders and the fp16 encoder are the kernels' own reference twins (kernels/reference), re-exported, so
// the engine and the WASM kernels share one definition of each bit layout. Every encoder rounds to nearest
// with ties to even after first rounding its argument to f32 (as a C float or a torch f32 tensor would
// be); overflow follows each format's rule: fp16 and E5M2 go to ±infinity, E4M3FN (no infinities) to
// NaN, as torch's `.to(torch.float8_e4m3fn)` does.

import { bf16ToF32, f16ToF32, f8e4m3ToF32, f8e5m2ToF32, readF16 } from '../../../kernels/reference/convert'
import { f32ToF16Bits } from '../../../kernels/reference/ggml-quantize'
import { roundHalfEven } from './rounding'

export { bf16ToF32, f16ToF32, f32ToF16Bits, f8e4m3ToF32, f8e5m2ToF32, readF16 }

const f32 = new Float32Array(1)
const u32 = new Uint32Array(f32.buffer)

// ---- fp16 ----

/** The smallest positive fp16 (a subnormal): the floor for scales that would otherwise round to 0. */
export const F16_MIN_POSITIVE = 2 ** -24

/** x rounded to the nearest fp16 value (ties to even), as a number: the f32 → f16 → f32 round trip. */
export function roundToF16(x: number): number {
  return f16ToF32(f32ToF16Bits(x))
}

/** fp16 bits of every value (rounded to nearest even). */
export function encodeF16Array(values: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(values.length)
  for (let i = 0; i < values.length; i++) out[i] = f32ToF16Bits(values[i])
  return out
}

// ---- bf16 ----

/**
 * bf16 bits of x: the top 16 bits of its f32 pattern, rounded to nearest even. NaN becomes the quiet NaN
 * 0x7fc0 with x's sign bit (JS NaNs carry neither sign nor payload, so in practice 0x7fc0).
 */
export function f32ToBf16Bits(x: number): number {
  f32[0] = x
  const bits = u32[0]
  if ((bits & 0x7fffffff) > 0x7f800000) return ((bits >>> 16) & 0x8000) | 0x7fc0
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff
}

/**
 * ggml's f32 → bf16 (ggml_compute_fp32_to_bf16) over f32 bit patterns: the same rounding, but a NaN keeps
 * its sign and payload with the quiet bit set, which only bit patterns (not JS numbers) can carry. Returns
 * the bf16 bytes and the f32 values they decode to.
 */
export function encodeBf16Ggml(w: Float32Array): { bytes: Uint8Array; decoded: Float32Array } {
  const bits = new Uint32Array(w.buffer, w.byteOffset, w.length)
  const halves = new Uint16Array(w.length)
  const decoded = new Float32Array(w.length)
  const decodedBits = new Uint32Array(decoded.buffer)
  for (let i = 0; i < w.length; i++) {
    const u = bits[i]
    const isNan = (u & 0x7fffffff) > 0x7f800000
    const h = isNan ? ((u >>> 16) | 64) & 0xffff : ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff
    halves[i] = h
    decodedBits[i] = h << 16
  }
  return { bytes: new Uint8Array(halves.buffer), decoded }
}

/** Encodes f32 values into `out` (one 16-bit pattern each) as BF16 or F16, as PyTorch's `.to()` rounds. */
export function encodeHalf(values: Float32Array, dtype: 'BF16' | 'F16', out: Uint16Array): void {
  if (dtype === 'F16') {
    for (let i = 0; i < values.length; i++) out[i] = f32ToF16Bits(values[i])
    return
  }
  // BF16 inline over the f32 bit patterns (f32ToBf16Bits, unrolled): this loop runs over billions of
  // values for the 7B synthetic preset.
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length)
  for (let i = 0; i < bits.length; i++) {
    const b = bits[i]
    out[i] = (b & 0x7fffffff) > 0x7f800000 ? ((b >>> 16) & 0x8000) | 0x7fc0 : (b + 0x7fff + ((b >>> 16) & 1)) >>> 16
  }
}

// ---- fp8 ----

/** A small binary float format: exponent bias, mantissa bits, largest finite value, overflow code. */
interface MiniFloat {
  mantissaBits: number
  bias: number
  maxFinite: number
  /** Bits (without sign) written when the rounded magnitude exceeds maxFinite. */
  overflow: number
  /** Bits written for NaN. */
  nan: number
}

/** OCP E4M3FN: bias 7, 3 mantissa bits, largest finite 448, no infinities (S.1111.111 is NaN). */
const E4M3: MiniFloat = { mantissaBits: 3, bias: 7, maxFinite: 448, overflow: 0x7f, nan: 0x7f }
/** OCP E5M2: bias 15, 2 mantissa bits, largest finite 57344, IEEE infinities. */
const E5M2: MiniFloat = { mantissaBits: 2, bias: 15, maxFinite: 57344, overflow: 0x7c, nan: 0x7f }

/**
 * Encodes x in a mini-float by value: a magnitude a in [2^e, 2^(e+1)) has the quantum 2^(e − m) (below the
 * normal range, the subnormal quantum 2^(1 − bias − m)), and a / quantum is exact in f64, so rounding that
 * quotient half to even is the whole rounding; the result then splits into exponent and mantissa fields.
 */
function encodeMiniFloat(x: number, fmt: MiniFloat): number {
  const v = Math.fround(x)
  if (Number.isNaN(v)) return fmt.nan
  const sign = v < 0 || Object.is(v, -0) ? 0x80 : 0
  const a = Math.abs(v)
  if (a === Infinity) return sign | fmt.overflow
  const minNormalExponent = 1 - fmt.bias
  let e = minNormalExponent
  if (a >= 2 ** minNormalExponent) {
    e = Math.floor(Math.log2(a))
    // log2 can be off by one near powers of two: settle e so that 2^e ≤ a < 2^(e+1).
    if (2 ** e > a) e--
    else if (2 ** (e + 1) <= a) e++
  }
  const steps = roundHalfEven(a / 2 ** (e - fmt.mantissaBits))
  const r = steps * 2 ** (e - fmt.mantissaBits)
  if (r > fmt.maxFinite) return sign | fmt.overflow
  if (r === 0) return sign
  // The rounding may have carried into the next binade (steps = 2^(m+1)): renormalise.
  let exponent = e
  let mantissa = steps
  if (mantissa >= 2 ** (fmt.mantissaBits + 1)) {
    exponent++
    mantissa /= 2
  }
  if (mantissa < 2 ** fmt.mantissaBits) return sign | mantissa // subnormal (biased exponent 0)
  return sign | ((exponent + fmt.bias) << fmt.mantissaBits) | (mantissa - 2 ** fmt.mantissaBits)
}

/** E4M3FN bits of x, rounded to nearest even; beyond 448 (after rounding) NaN, as torch casts. */
export function f32ToF8E4M3Bits(x: number): number {
  return encodeMiniFloat(x, E4M3)
}

/** E5M2 bits of x, rounded to nearest even; beyond 57344 (after rounding) ±infinity. */
export function f32ToF8E5M2Bits(x: number): number {
  return encodeMiniFloat(x, E5M2)
}

/** Largest finite E4M3FN value: the per-channel / per-token scale maps a row's absmax onto it. */
export const F8_E4M3_MAX = E4M3.maxFinite

/**
 * x rounded to the nearest E4M3FN value (ties to even), as a number: the f32 → e4m3 → f32 round trip, for
 * |x| ≤ 448 (callers clamp first, as the fake quantizers do). Inline on the f32 bits, as this runs on every
 * activation of an FP8 model: normal values keep 3 of f32's 23 mantissa bits (round half to even on the
 * 20 dropped), values below E4M3's smallest normal 2^-6 round to multiples of its subnormal step 2^-9.
 */
export function roundToF8E4M3(x: number): number {
  f32[0] = x
  const bits = u32[0]
  if ((bits & 0x7fffffff) >= 0x3c800000) {
    u32[0] = ((bits + 0x7ffff + ((bits >>> 20) & 1)) & 0xfff00000) >>> 0
    return f32[0]
  }
  return roundHalfEven(f32[0] * 512) / 512
}
