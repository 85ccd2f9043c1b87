// FP8 W8A8 as llm-compressor's FP8_DYNAMIC scheme: every targeted Linear's weights in OCP E4M3FN with
// one scale per output channel (static, symmetric: scale = max|row| / 448), and at run time the input of
// every Linear quantized to E4M3 per token (dynamic, symmetric), simulated in f32 by the forward pass
// (forward/activation-quant.ts). No calibration: the weight scales are min-max, the activation scales
// are computed per token as the model runs. Facts from compressed-tensors' FP8_DYNAMIC preset and its
// float quantizer: x / scale is clamped to ±448, cast to float8_e4m3fn (nearest, ties to even), and the
// dequantized weight is that value times the scale.

import { INT8_CLAMP } from '../../forward/activation-quant'
import { F8_E4M3_MAX, roundToF8E4M3 } from '../../numerics/float-encodings'
import type { ParamSpec } from '../../../contract/method-params'
import type { UniformGridRecord } from '../quant/record'
import type { CompressionMethod } from './method'
import { ParamReader } from './params'

export type Fp8Params = Record<string, never>

const f = Math.fround

/** What the report and the size preview call the result. */
export const FP8_FORMAT = 'fp8 e4m3 per-channel / per-token'

/** One E4M3 byte per weight and one 16-bit scale per output channel (the model's dtype in a checkpoint). */
export function fp8BitsPerWeight(cols: number): number {
  return 8 + 16 / cols
}

/**
 * Quantizes W [rows, cols] in place to E4M3 with one f32 scale per row (max|row| / 448, floored at 1e-5
 * so an all-zero row keeps finite values); returns the scales as a record the float-quantized export reads.
 */
export function quantizeRowsFp8(W: Float32Array, rows: number, cols: number): UniformGridRecord {
  const scales = new Float32Array(rows)
  for (let r = 0; r < rows; r++) {
    let m = 0
    for (let c = 0; c < cols; c++) m = Math.max(m, Math.abs(W[r * cols + c]))
    const scale = f(Math.max(f(m), INT8_CLAMP) / F8_E4M3_MAX)
    scales[r] = scale
    for (let c = 0; c < cols; c++) {
      const q = Math.min(F8_E4M3_MAX, Math.max(-F8_E4M3_MAX, f(W[r * cols + c] / scale)))
      W[r * cols + c] = f(roundToF8E4M3(q) * scale)
    }
  }
  return {
    bits: 8,
    groupSize: -1,
    sym: true,
    rows,
    cols,
    scales,
    zeros: new Uint8Array(rows),
    gIdx: new Int32Array(cols),
    encoding: 'fp8-e4m3',
  }
}

export const FP8_PARAMS: readonly ParamSpec[] = []

export const fp8: CompressionMethod<Fp8Params> = {
  name: 'fp8',
  kind: 'quantize',
  summary: 'FP8 W8A8 (FP8_DYNAMIC): E4M3 weights with per-channel scales, E4M3 activations per token at run time',
  params: FP8_PARAMS,
  needs: { calibration: false, hessian: false },
  runtime: { activations: 'fp8-per-token' },
  parseParams(raw, where) {
    const r = new ParamReader(raw, where, FP8_PARAMS)
    r.done()
    return {}
  },
  predict: (_p, _rows, cols) => ({ bitsPerWeight: fp8BitsPerWeight(cols), format: FP8_FORMAT }),
  async compressGroup(ctx) {
    return ctx.linears.map((l) => ({
      name: l.name,
      bitsPerWeight: fp8BitsPerWeight(l.cols),
      format: FP8_FORMAT,
      record: quantizeRowsFp8(l.weight, l.rows, l.cols),
    }))
  },
}
