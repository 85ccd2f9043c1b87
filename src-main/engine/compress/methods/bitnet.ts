// BitNet b1.58 (Ma et al. 2024) as post-training quantization: every targeted Linear's weights become
// ternary, {−1, 0, +1} times one absmean scale per tensor, and at run time the input of every Linear is
// quantized to 8 bits per token (absmax). Facts from the paper and its authors' training notes:
//   γ = mean|W| (clamped at 1e-5), q = clamp(round(W / γ), −1, 1), Ŵ = q · γ;
//   x̂ = round(x · 127 / max|x_token|) · max|x_token| / 127, only at Linear inputs (the forward pass's
//   'int8-per-token-inputs' scheme, forward/activation-quant.ts); attention itself stays in f32.
// A model not trained for it loses most of what it knew (that is the paper's point: BitNet is trained
// ternary from the start); quantization-aware training by distillation (bitnet-qat.ts, distill's
// `qat: ternary`) is how a pretrained model gets there. The paper's BitLinear also normalizes its input
// (SubLN); a pretrained Llama has no such norm before o_proj and down_proj, and adding one would change
// the architecture every loader expects, so Whittle quantizes the Linears of the model as it is.
//
// Scales are fp16 by default (scale_dtype), so the result is exactly what GGUF TQ1_0 / TQ2_0 store: their
// per-block scale is the block's absmax, which for ternary weights is γ itself (a block of zeros stores 0).

import type { LearnedGrid } from '../../../contract/api'
import type { ParamSpec } from '../../../contract/method-params'
import type { RuntimeQuant } from '../../model/loaded-model'
import { F16_MIN_POSITIVE, roundToF16 } from '../../numerics/float-encodings'
import type { ScaleDType } from '../../numerics/minmax-grid'
import { roundHalfEven } from '../../numerics/rounding'
import { WhittleError } from '../../errors'
import { uniformParamSpecs } from '../quant/uniform-format'
import type { CompressionMethod } from './method'
import { ParamReader } from './params'

export interface BitnetParams {
  /** Precision of the per-tensor scale γ (f16: what GGUF's TQ types and a half-precision checkpoint store). */
  scaleDtype: ScaleDType
}

const f = Math.fround

/** The floor of γ (the authors' clamp), so an all-zero tensor keeps finite values. */
export const TERNARY_SCALE_FLOOR = 1e-5

/** W1.58A8's activations: int8 absmax per token at every Linear input, nowhere else. */
export const BITNET_RUNTIME: RuntimeQuant = { activations: 'int8-per-token-inputs' }

/** The absmean scale of W: γ = max(mean|W|, 1e-5), rounded to `scaleDtype`. */
export function absmeanScale(W: Float32Array, scaleDtype: ScaleDType): number {
  let sum = 0
  for (let i = 0; i < W.length; i++) sum += Math.abs(W[i])
  const gamma = f(Math.max(f(sum / Math.max(1, W.length)), TERNARY_SCALE_FLOOR))
  return scaleDtype === 'f16' ? Math.max(F16_MIN_POSITIVE, roundToF16(gamma)) : gamma
}

/**
 * Writes the ternary version of `src` into `out` (the same array is fine): q · γ with
 * q = clamp(round-half-even(w / γ), −1, 1) and γ the absmean scale. Returns γ and how many weights became 0.
 */
export function ternarize(
  src: Float32Array,
  out: Float32Array,
  scaleDtype: ScaleDType,
): { scale: number; zeros: number } {
  const gamma = absmeanScale(src, scaleDtype)
  let zeros = 0
  for (let i = 0; i < src.length; i++) {
    const q = Math.max(-1, Math.min(1, roundHalfEven(f(src[i] / gamma))))
    if (q === 0) zeros++
    // q · γ is exact in f32 (q ∈ {−1, 0, 1}); +0 for q = 0, so no −0 reaches an export.
    out[i] = q === 0 ? 0 : q * gamma
  }
  return { scale: gamma, zeros }
}

/** Storage bits per weight: 2-bit codes (TQ2_0's and BitNet's own packing) and one scale per tensor. */
export function ternaryBitsPerWeight(rows: number, cols: number, scaleDtype: ScaleDType): number {
  return 2 + (scaleDtype === 'f16' ? 16 : 32) / (rows * cols)
}

/** How every ternary Linear's format begins in the report (the GGUF export picks TQ2_0 for such a model). */
export const TERNARY_FORMAT_PREFIX = 'ternary absmean'

/** What the report and the size preview call a ternary Linear. */
export function ternaryFormat(scaleDtype: ScaleDType): string {
  return `${TERNARY_FORMAT_PREFIX} w1.58a8${scaleDtype === 'f32' ? ' f32-scale' : ''}`
}

/** The three levels on the tensor's histogram (one table per tensor, as a per-tensor grid is drawn). */
export function ternaryGrid(scale: number): LearnedGrid {
  return { kind: 'centroids', rows: [{ row: 0, centroids: [-scale, 0, scale] }], outlierFraction: 0 }
}

export const BITNET_PARAMS: readonly ParamSpec[] = uniformParamSpecs(-1).filter((p) => p.name === 'scale_dtype')

export function parseBitnetParams(raw: Record<string, unknown>, where: string): BitnetParams {
  const r = new ParamReader(raw, where, BITNET_PARAMS)
  const p: BitnetParams = { scaleDtype: r.oneOf<ScaleDType>('scale_dtype') }
  r.done()
  return p
}

export const bitnet: CompressionMethod<BitnetParams> = {
  name: 'bitnet',
  kind: 'quantize',
  summary:
    'BitNet b1.58 PTQ: ternary weights (absmean scale per tensor), int8 activations per token at run time; no calibration',
  params: BITNET_PARAMS,
  needs: { calibration: false, hessian: false },
  runtime: BITNET_RUNTIME,
  parseParams: parseBitnetParams,
  predict: (p, rows, cols) => ({
    bitsPerWeight: ternaryBitsPerWeight(rows, cols, p.scaleDtype),
    format: ternaryFormat(p.scaleDtype),
  }),
  async compressGroup(ctx) {
    return ctx.linears.map((l) => {
      // A NaN or infinity would poison the tensor's mean and with it every weight.
      if (!l.weight.every(Number.isFinite))
        throw new WhittleError('validation', null, `bitnet: ${l.name} has non-finite weights`)
      const { scale, zeros } = ternarize(l.weight, l.weight, l.params.scaleDtype)
      return {
        name: l.name,
        bitsPerWeight: ternaryBitsPerWeight(l.rows, l.cols, l.params.scaleDtype),
        format: ternaryFormat(l.params.scaleDtype),
        note: `γ = ${scale.toPrecision(5)}, ${((100 * zeros) / l.weight.length).toFixed(1)}% zeros`,
        grid: ternaryGrid(scale),
      }
    })
  },
}
