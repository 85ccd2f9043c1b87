// f32 -> BF16 / F16 encoders with round-to-nearest-even, as PyTorch's .to(torch.bfloat16 / torch.float16)
// rounds, so a synthetic BF16 model looks like one saved by PyTorch.

const f32 = new Float32Array(1)
const u32 = new Uint32Array(f32.buffer)

/** BF16 bits of x: the top 16 bits of its f32 pattern, rounded to nearest even; NaN stays a quiet NaN. */
export function f32ToBf16Bits(x: number): number {
  f32[0] = x
  const bits = u32[0]
  if ((bits & 0x7fffffff) > 0x7f800000) return ((bits >>> 16) & 0x8000) | 0x7fc0
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff
}

/** IEEE half bits of x, rounded to nearest even; overflow gives infinity, tiny values subnormals or ±0. */
export function f32ToF16Bits(x: number): number {
  f32[0] = x
  const bits = u32[0]
  const sign = (bits >>> 16) & 0x8000
  const exp = (bits >>> 23) & 0xff
  const mant = bits & 0x7fffff
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0)
  const e = exp - 127 + 15
  if (e >= 0x1f) return sign | 0x7c00
  if (e <= 0) {
    // Below 2^-25 everything rounds to zero (2^-25 itself is a tie with 0, which is even).
    if (e < -10) return sign
    const m = mant | 0x800000
    const shift = 14 - e
    const halfway = 1 << (shift - 1)
    return sign | ((m + halfway - 1 + ((m >>> shift) & 1)) >>> shift)
  }
  let h = (e << 10) | (mant >>> 13)
  const rest = mant & 0x1fff
  // A carry out of the mantissa bumps the exponent, up to infinity: the encoding makes that right.
  if (rest > 0x1000 || (rest === 0x1000 && (h & 1))) h++
  return sign | h
}

/** Encodes f32 values into `out` (2 bytes each, little-endian) as BF16 or F16. */
export function encodeHalf(values: Float32Array, dtype: 'BF16' | 'F16', out: Uint16Array): void {
  if (dtype === 'F16') {
    for (let i = 0; i < values.length; i++) out[i] = f32ToF16Bits(values[i])
    return
  }
  // BF16 inline over the f32 bit patterns: this loop runs over billions of values for the 7B preset.
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length)
  for (let i = 0; i < bits.length; i++) {
    const b = bits[i]
    out[i] = (b & 0x7fffffff) > 0x7f800000 ? ((b >>> 16) & 0x8000) | 0x7fc0 : (b + 0x7fff + ((b >>> 16) & 1)) >>> 16
  }
}
