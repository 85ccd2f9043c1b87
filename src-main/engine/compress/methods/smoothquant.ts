// SmoothQuant W8A8 (Xiao et al.): migrate activation outliers into the weights with a per-channel scale
// s_j = max|X_j|^α / max|W_j|^(1−α), folded into the preceding RMSNorm (divide) and into the Linears
// that read it (multiply their input columns), then quantize weights to int8 per output channel
// (symmetric absmax) and, at run time, activations to int8 per token (dynamic, symmetric) at the input of
// every Linear and at the q/k/v outputs. Facts from the authors' smooth_lm / fake_quant:
// - max|W_j| is over all Linears sharing the input (q, k, v together; gate and up together), clamped at 1e-5;
// - s is clamped at 1e-5; nothing is folded between v and o, nor into down_proj;
// - activation scales come from the original model, not a sequentially compressed one.

import type { InputGroup } from '../../../contract/api'
import { INT8_CLAMP as CLAMP } from '../../forward/activation-quant'
import { roundHalfEven as roundEven } from '../../numerics/rounding'
import { boolParam, numberParam, type ParamSpec } from '../../../contract/method-params'
import type { CompressionMethod, LinearOutcome } from './method'
import { ParamReader } from './params'
import { int8ChannelRecord } from '../quant/record'

export interface SmoothQuantParams {
  alpha: number
  /** Fold scales (false = plain W8A8 without smoothing, the paper's baseline). */
  smooth: boolean
}

const f = Math.fround

/** Symmetric absmax int8 per output row, in f32 as the reference's fake quantizer does; returns the row scales. */
export function quantizeRowsInt8(W: Float32Array, rows: number, cols: number): Float32Array {
  const scales = new Float32Array(rows)
  for (let r = 0; r < rows; r++) {
    let m = 0
    for (let c = 0; c < cols; c++) m = Math.max(m, Math.abs(W[r * cols + c]))
    const scale = f(Math.max(f(m), CLAMP) / 127)
    scales[r] = scale
    for (let c = 0; c < cols; c++) W[r * cols + c] = f(roundEven(f(W[r * cols + c] / scale)) * scale)
  }
  return scales
}

export function smoothingScales(
  actAbsmax: ArrayLike<number>,
  weightColAbsmax: ArrayLike<number>,
  alpha: number,
): Float32Array {
  const s = new Float32Array(actAbsmax.length)
  for (let j = 0; j < s.length; j++) {
    const w = Math.max(weightColAbsmax[j], CLAMP)
    s[j] = f(Math.max(f(Math.pow(actAbsmax[j], alpha) / Math.pow(w, 1 - alpha)), CLAMP))
  }
  return s
}

const FOLDABLE: Partial<Record<InputGroup, 'attn_norm' | 'ffn_norm'>> = { qkv: 'attn_norm', gate_up: 'ffn_norm' }

export const SMOOTHQUANT_PARAMS: readonly ParamSpec[] = [
  numberParam('alpha', 0.5, 0, 1, 'Migration strength: s_j = max|X_j|^α / max|W_j|^(1−α)', 0.05),
  boolParam('smooth', true, 'Fold the scales (false: plain W8A8, the baseline)'),
]

export const smoothquant: CompressionMethod<SmoothQuantParams> = {
  name: 'smoothquant',
  kind: 'quantize',
  summary: 'SmoothQuant W8A8: activation outliers migrated into the weights, int8 weights and activations',
  params: SMOOTHQUANT_PARAMS,
  needs: { calibration: true, hessian: false, sequential: false },
  runtime: { activations: 'int8-per-token' },
  parseParams(raw, where) {
    const r = new ParamReader(raw, where, SMOOTHQUANT_PARAMS)
    const p = { alpha: r.num('alpha'), smooth: r.bool('smooth') }
    r.done()
    return p
  },
  predict: (_p, _rows, cols) => ({ bitsPerWeight: 8 + 16 / cols, format: 'w8a8 per-channel / per-token' }),
  async compressGroup() {
    throw new Error('smoothquant works per layer')
  },
  async compressLayer(ctx) {
    const outcomes: LinearOutcome[] = []
    for (const g of ctx.groups) {
      const p = g.linears[0].params
      const normRole = FOLDABLE[g.group]
      let scale: Float32Array | undefined
      // Smoothing needs the whole group (all readers of the input) to keep the function unchanged.
      const complete = normRole && (g.group === 'qkv' ? g.linears.length === 3 : g.linears.length === 2)
      if (p.smooth && normRole && complete && g.input) {
        const norm = await ctx.read(normRole)
        if (norm) {
          const cols = g.linears[0].cols
          const wmax = new Float32Array(cols)
          for (const l of g.linears)
            for (let i = 0; i < l.weight.length; i++) wmax[i % cols] = Math.max(wmax[i % cols], Math.abs(l.weight[i]))
          scale = smoothingScales(g.input.absmax, wmax, p.alpha)
          for (let j = 0; j < cols; j++) norm[j] = f(norm[j] / scale[j])
          ctx.write(normRole, norm)
          for (const l of g.linears)
            for (let i = 0; i < l.weight.length; i++) l.weight[i] = f(l.weight[i] * scale[i % cols])
        }
      }
      for (const l of g.linears) {
        const scales = quantizeRowsInt8(l.weight, l.rows, l.cols)
        outcomes.push({
          name: l.name,
          bitsPerWeight: 8 + 16 / l.cols,
          format: 'w8a8 per-channel / per-token',
          inputScale: scale,
          // The int8 grid itself, so int-quantized (and GPTQ / pack-quantized) exports store the codes.
          record: int8ChannelRecord(scales, l.rows, l.cols),
          note: scale ? `smoothed, α = ${p.alpha}` : 'not smoothed (no foldable producer)',
        })
      }
    }
    return outcomes
  },
}
