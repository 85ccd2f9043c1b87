// LLM.int8()-style mixed precision (Dettmers et al. 2022): the few input channels whose calibration
// activations exceed a threshold (the "emergent outliers") keep their weight columns in 16 bits;
// every other column is int8, symmetric absmax per output row over the non-outlier columns. Only the
// weights are simulated here: the activations are not quantized.

import { WhittleError } from '../../errors'
import { roundHalfEven } from '../quant/minmax'
import type { CompressionMethod } from './method'
import { ParamReader } from './params'

export interface LlmInt8Params {
  /** An input channel whose calibration absmax exceeds this stays in fp16. */
  threshold: number
}

const f = Math.fround

/** Largest finite half is 65504; from the midpoint to the next power of two (65520) on, RNE gives ∞. */
const F16_OVERFLOW = 65520
const F16_MIN_NORMAL = 2 ** -14

/**
 * x rounded to the nearest IEEE binary16 value (ties to even), returned as a number: the exact
 * f32 → f16 → f32 round trip. Works on values, not bit patterns: a half has 11 significant bits, so
 * rounding x to a multiple of its quantum 2^(e − 10) (2^−24 below the normal range) is the encoding.
 */
export function roundToF16(x: number): number {
  const v = f(x)
  if (!Number.isFinite(v) || v === 0) return v
  const a = Math.abs(v)
  if (a >= F16_OVERFLOW) return v > 0 ? Infinity : -Infinity
  let quantum = 2 ** -24
  if (a >= F16_MIN_NORMAL) {
    let e = Math.floor(Math.log2(a))
    // log2 can be off by one ulp near powers of two: settle e so that 2^e ≤ a < 2^(e+1).
    if (2 ** e > a) e--
    else if (2 ** (e + 1) <= a) e++
    quantum = 2 ** (e - 10)
  }
  // v / quantum is exact (a power-of-two division of an f32 value in f64), so only the rounding rounds.
  const r = roundHalfEven(v / quantum) * quantum
  return r === 0 ? (v < 0 ? -0 : 0) : r
}

/** Input channels whose calibration absmax exceeds the threshold. */
export function outlierChannels(absmax: Float32Array, threshold: number): boolean[] {
  return Array.from(absmax, (a) => a > threshold)
}

/**
 * Quantizes W [rows, cols] in place: outlier columns rounded to fp16, the others int8 with one
 * scale = absmax / 127 per row over the non-outlier columns, codes round-half-even clamped to ±127.
 */
export function llmInt8Quantize(W: Float32Array, rows: number, cols: number, outlier: readonly boolean[]): void {
  for (let r = 0; r < rows; r++) {
    const row = r * cols
    let absmax = 0
    for (let c = 0; c < cols; c++) if (!outlier[c]) absmax = Math.max(absmax, Math.abs(W[row + c]))
    const scale = f(absmax / 127)
    for (let c = 0; c < cols; c++) {
      const w = W[row + c]
      if (outlier[c]) W[row + c] = roundToF16(w)
      else if (scale > 0) W[row + c] = f(scale * Math.min(127, Math.max(-127, roundHalfEven(f(w / scale)))))
      // scale 0: the row's regular columns are all zero, and zero is on the grid.
    }
  }
}

/** int8 codes for regular columns, fp16 for the kept ones, plus one fp16 scale per row. */
export function llmInt8BitsPerWeight(cols: number, kept: number): number {
  return (8 * (cols - kept) + 16 * kept) / cols + 16 / cols
}

function format(p: LlmInt8Params): string {
  return `int8 + fp16 outliers (>${p.threshold})`
}

export const llmInt8: CompressionMethod<LlmInt8Params> = {
  name: 'llm_int8',
  kind: 'quantize',
  needs: { calibration: true, hessian: false },
  parseParams(raw, where) {
    const r = new ParamReader(raw, where)
    const p: LlmInt8Params = { threshold: r.num('threshold', 6.0, 0, 1e9) }
    r.done()
    return p
  },
  // Before calibration the outlier count is unknown: the preview assumes none are kept.
  predict: (p, _rows, cols) => ({ bitsPerWeight: llmInt8BitsPerWeight(cols, 0), format: format(p) }),
  async compressGroup(ctx) {
    const stats = ctx.input
    if (!stats) throw new WhittleError('validation', null, `llm_int8: layer ${ctx.layer} ${ctx.group} has no calibration statistics`)
    return ctx.linears.map((l) => {
      if (stats.absmax.length !== l.cols) {
        throw new WhittleError('validation', null, `llm_int8: ${l.name} has ${l.cols} inputs but its calibration statistics have ${stats.absmax.length}`)
      }
      if (!l.weight.every(Number.isFinite)) throw new WhittleError('validation', null, `llm_int8: ${l.name} has non-finite weights`)
      const outlier = outlierChannels(stats.absmax, l.params.threshold)
      const kept = outlier.filter(Boolean).length
      llmInt8Quantize(l.weight, l.rows, l.cols, outlier)
      return {
        name: l.name,
        bitsPerWeight: llmInt8BitsPerWeight(l.cols, kept),
        format: format(l.params),
        note: `${kept}/${l.cols} input channels kept in fp16 (${((100 * kept) / l.cols).toFixed(1)}%)`,
      }
    })
  },
}
