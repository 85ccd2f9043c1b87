// fp16 as plain numbers: quantizers that must produce what a checkpoint stores in fp16 (GPTQ scales,
// LLM.int8 outlier columns) round through these, so what the engine measures is what gets exported.

import { f32ToF16Bits } from '../../synthetic/float-encode'

const f16Scratch = new Uint16Array(1)

/** The f32 value of fp16 bits (exact). */
export function f16BitsToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1
  const exp = (h >>> 10) & 0x1f
  const mant = h & 0x3ff
  if (exp === 0) return sign * mant * 2 ** -24
  if (exp === 0x1f) return mant ? NaN : sign * Infinity
  return sign * (1 + mant / 1024) * 2 ** (exp - 15)
}

/** x rounded to the nearest fp16 value (ties to even), as a number. */
export function roundToF16(x: number): number {
  f16Scratch[0] = f32ToF16Bits(x)
  return f16BitsToF32(f16Scratch[0])
}

/** The smallest positive fp16 (a subnormal): the floor for scales that would otherwise round to 0. */
export const F16_MIN_POSITIVE = 2 ** -24
