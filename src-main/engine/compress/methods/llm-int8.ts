// LLM.int8()-style mixed precision (Dettmers et al. 2022): the few input channels whose calibration
// activations exceed a threshold (the "emergent outliers") keep their weight columns in 16 bits;
// every other column is int8, symmetric absmax per output row over the non-outlier columns. Only the
// weights are simulated here: the activations are not quantized.

import { WhittleError } from '../../errors'
import { roundToF16 } from '../../numerics/float-encodings'
import { roundHalfEven } from '../../numerics/rounding'
import { numberParam, type ParamSpec } from '../../../contract/method-params'
import type { CompressionMethod } from './method'
import { ParamReader } from './params'
import { int8ChannelRecord } from '../quant/record'

export interface LlmInt8Params {
  /** An input channel whose calibration absmax exceeds this stays in fp16. */
  threshold: number
}

const f = Math.fround

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

/**
 * The per-row scales llmInt8Quantize used when no column is kept (absmax / 127); an all-zero row gets
 * scale 1, on whose grid its zeros lie as well.
 */
function rowScales(W: Float32Array, rows: number, cols: number): Float32Array {
  const scales = new Float32Array(rows)
  for (let r = 0; r < rows; r++) {
    let absmax = 0
    for (let c = 0; c < cols; c++) absmax = Math.max(absmax, Math.abs(W[r * cols + c]))
    scales[r] = absmax > 0 ? f(absmax / 127) : 1
  }
  return scales
}

/** int8 codes for regular columns, fp16 for the kept ones, plus one fp16 scale per row. */
export function llmInt8BitsPerWeight(cols: number, kept: number): number {
  return (8 * (cols - kept) + 16 * kept) / cols + 16 / cols
}

function format(p: LlmInt8Params): string {
  return `int8 + fp16 outliers (>${p.threshold})`
}

export const LLM_INT8_PARAMS: readonly ParamSpec[] = [
  numberParam('threshold', 6.0, 0, 1e9, 'Input channels whose activation absmax exceeds this stay in 16 bits', 0.5),
]

export const llmInt8: CompressionMethod<LlmInt8Params> = {
  name: 'llm_int8',
  kind: 'quantize',
  summary: 'LLM.int8: outlier input channels (calibration absmax) stay fp16, the rest int8 per row',
  params: LLM_INT8_PARAMS,
  needs: { calibration: true, hessian: false },
  parseParams(raw, where) {
    const r = new ParamReader(raw, where, LLM_INT8_PARAMS)
    const p: LlmInt8Params = { threshold: r.num('threshold') }
    r.done()
    return p
  },
  // Before calibration the outlier count is unknown: the preview assumes none are kept.
  predict: (p, _rows, cols) => ({ bitsPerWeight: llmInt8BitsPerWeight(cols, 0), format: format(p) }),
  async compressGroup(ctx) {
    const stats = ctx.input
    if (!stats)
      throw new WhittleError(
        'validation',
        null,
        `llm_int8: layer ${ctx.layer} ${ctx.group} has no calibration statistics`,
      )
    return ctx.linears.map((l) => {
      if (stats.absmax.length !== l.cols) {
        throw new WhittleError(
          'validation',
          null,
          `llm_int8: ${l.name} has ${l.cols} inputs but its calibration statistics have ${stats.absmax.length}`,
        )
      }
      if (!l.weight.every(Number.isFinite))
        throw new WhittleError('validation', null, `llm_int8: ${l.name} has non-finite weights`)
      const outlier = outlierChannels(stats.absmax, l.params.threshold)
      const kept = outlier.filter(Boolean).length
      // Read before quantizing: the grid's scales come from the original row absmax.
      const scales = kept === 0 ? rowScales(l.weight, l.rows, l.cols) : null
      llmInt8Quantize(l.weight, l.rows, l.cols, outlier)
      return {
        name: l.name,
        bitsPerWeight: llmInt8BitsPerWeight(l.cols, kept),
        format: format(l.params),
        // With no fp16 column the Linear is a plain int8 per-row grid, which int-quantized exports store.
        ...(scales ? { record: int8ChannelRecord(scales, l.rows, l.cols) } : {}),
        note: `${kept}/${l.cols} input channels kept in fp16 (${((100 * kept) / l.cols).toFixed(1)}%)`,
      }
    })
  },
}
