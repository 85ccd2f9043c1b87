// The min-max uniform quantizer of the GPTQ reference (quant.py), in f32 like PyTorch:
//   xmin = min(min(w), 0), xmax = max(max(w), 0)            (the range always holds 0)
//   sym: xmax = max(|xmin|, xmax), xmin = -xmax when xmin < 0
//   both 0 → [-1, 1]
//   scale = (xmax − xmin) / maxq, zero = round(−xmin / scale)   (sym: zero = (maxq + 1) / 2)
//   q = clamp(round(w / scale) + zero, 0, maxq), w' = scale · (q − zero)
// with round-half-to-even (torch.round), every operation rounded to f32.
// scaleDtype 'f16' rounds the scale to fp16 before the zero is derived from it, as a checkpoint that
// stores fp16 scales (GPTQ) will decode it; 'f32' is the reference's behaviour.

import { F16_MIN_POSITIVE, roundToF16 } from './float-encodings'
import { roundHalfEven } from './rounding'

const f = Math.fround

export interface QuantGrid {
  scale: number
  zero: number
  maxq: number
}

export type ScaleDType = 'f32' | 'f16'

/** Grid parameters for the values w[from..to) (strided by `stride`, starting at `start`). */
export function minmaxGrid(
  w: ArrayLike<number>,
  start: number,
  count: number,
  stride: number,
  bits: number,
  sym: boolean,
  scaleDtype: ScaleDType = 'f32',
): QuantGrid {
  const maxq = 2 ** bits - 1
  let xmin = 0,
    xmax = 0
  for (let i = 0, at = start; i < count; i++, at += stride) {
    const v = w[at]
    if (v < xmin) xmin = v
    if (v > xmax) xmax = v
  }
  if (sym) {
    xmax = Math.max(Math.abs(xmin), xmax)
    if (xmin < 0) xmin = -xmax
  }
  if (xmin === 0 && xmax === 0) {
    xmin = -1
    xmax = 1
  }
  let scale = f(f(xmax - xmin) / maxq)
  if (scaleDtype === 'f16') scale = Math.max(F16_MIN_POSITIVE, roundToF16(scale))
  // A scale rounded down can put −xmin / scale just past maxq: the zero must stay a valid code.
  const zero = sym ? (maxq + 1) / 2 : Math.min(maxq, roundHalfEven(f(f(-xmin) / scale)))
  return { scale, zero, maxq }
}

export function quantizeValue(x: number, g: QuantGrid): number {
  const q = Math.min(g.maxq, Math.max(0, roundHalfEven(f(x / g.scale)) + g.zero))
  return f(g.scale * (q - g.zero))
}

/** The integer code of x on the grid (for packed exports). */
export function quantizeCode(x: number, g: QuantGrid): number {
  return Math.min(g.maxq, Math.max(0, roundHalfEven(f(x / g.scale)) + g.zero))
}
