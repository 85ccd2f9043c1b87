// PB-LLM (Shang et al. 2023), partial binarization: a salient fraction of a Linear's weights stays at 8 bits
// and the rest is binarized, each row to sign(w) · α with α = mean |w| of the row's binarized weights (the
// scale that minimises the row's squared error for fixed signs). Salient weights are chosen over the whole
// matrix, by |w| or by SparseGPT's score w² / [H⁻¹]ii² (the diagonal of the Cholesky factor the OBS loop
// uses); the 8-bit ones share one symmetric absmax grid per row. With `compensate`, the weights go through
// GPTQ's column loop (gptq.ts), so each column's binarization error is fed into the columns not yet done.
// Mask, α and the 8-bit grids are fixed from the weight before the loop, so they are what would be stored.
// salient_fraction 0 without compensation is plain binarization, the baseline the paper improves on.

import type { LearnedGrid } from '../../../contract/api'
import { boolParam, choiceParam, numberParam, type ParamSpec } from '../../../contract/method-params'
import { WhittleError } from '../../errors'
import { roundToF16 } from '../../numerics/float-encodings'
import { minmaxGrid, quantizeValue, type QuantGrid } from '../../numerics/minmax-grid'
import type { WorkerPool } from '../../pool/worker-pool'
import { maskThumbnail } from '../prune/sparsity'
import {
  GPTQ_PARAMS,
  gptqQuantizePlanned,
  planHessianAsync,
  type ElementQuantizer,
  type GptqHessianPlan,
  type GptqParams,
} from './gptq'
import type { CompressionMethod, LinearOutcome } from './method'
import { ParamReader } from './params'

export type SalientBy = 'magnitude' | 'hessian'

export interface PbLlmParams {
  /** Fraction of the Linear's weights kept at SALIENT_BITS, chosen over the whole matrix. */
  salientFraction: number
  salient: SalientBy
  /** GPTQ's error feedback through the calibration Hessian. */
  compensate: boolean
  damp: number
  blockSize: number
}

/** Width of a salient weight's code (symmetric, one absmax scale per row). */
export const SALIENT_BITS = 8
/** Width of a stored scale (α, and the 8-bit grid's scale): fp16. */
const SCALE_BITS = 16

/** How many of a rows × cols Linear's weights are salient. */
export function salientCount(fraction: number, rows: number, cols: number): number {
  return Math.round(fraction * rows * cols)
}

/**
 * Storage bits per weight, as counted here:
 * - each binarized weight 1 bit (its sign), each salient weight SALIENT_BITS;
 * - where the salient weights are: the cheaper of a bitmask (1 bit per weight) and per-row index lists
 *   (⌈log2 cols⌉ bits per salient weight plus a ⌈log2(cols + 1)⌉-bit count per row); nothing when none is;
 * - per row an fp16 α, and an fp16 scale for the 8-bit grid when there are salient weights.
 */
export function pbLlmBitsPerWeight(p: Pick<PbLlmParams, 'salientFraction'>, rows: number, cols: number): number {
  const n = rows * cols
  const k = salientCount(p.salientFraction, rows, cols)
  const codes = (n - k) * 1 + k * SALIENT_BITS
  const positions = k === 0 ? 0 : Math.min(n, k * Math.ceil(Math.log2(cols)) + rows * Math.ceil(Math.log2(cols + 1)))
  const scales = rows * SCALE_BITS * (k > 0 ? 2 : 1)
  return (codes + positions + scales) / n
}

export function pbLlmFormat(p: PbLlmParams): string {
  const kept =
    p.salientFraction > 0 ? ` + ${+(p.salientFraction * 100).toFixed(2)}% w${SALIENT_BITS} (${p.salient})` : ''
  return `1-bit sign·α${kept}${p.compensate ? ' gptq' : ''}`
}

/** |w|: salient by magnitude. */
export function magnitudeScores(W: Float32Array): Float32Array {
  return Float32Array.from(W, Math.abs)
}

/** w² / U_cc², U the upper Cholesky factor of the damped H⁻¹ (SparseGPT's pruning score; no act-order). */
export function hessianScores(W: Float32Array, rows: number, cols: number, plan: GptqHessianPlan): Float32Array {
  const f = Math.fround
  const s = new Float32Array(rows * cols)
  for (let c = 0; c < cols; c++) {
    const d = f(plan.U[c * cols + c] * plan.U[c * cols + c])
    for (let r = 0; r < rows; r++) s[r * cols + c] = f(f(W[r * cols + c] * W[r * cols + c]) / d)
  }
  return s
}

/** 1 for the k highest scores (ties at the threshold go to the lowest indices), else 0. */
export function selectSalient(scores: Float32Array, k: number): Uint8Array {
  const mask = new Uint8Array(scores.length)
  if (k <= 0) return mask
  if (k >= scores.length) return mask.fill(1)
  const threshold = scores.slice().sort()[scores.length - k]
  let taken = 0
  for (let i = 0; i < scores.length; i++) {
    if (scores[i] > threshold) {
      mask[i] = 1
      taken++
    }
  }
  for (let i = 0; i < scores.length && taken < k; i++) {
    if (scores[i] === threshold) {
      mask[i] = 1
      taken++
    }
  }
  return mask
}

/** What a partially binarized Linear stores besides its codes: the mask, α per row, the 8-bit grid per row. */
export interface PartialBinaryGrid {
  rows: number
  cols: number
  /** rows × cols, 1 where the weight is salient. */
  mask: Uint8Array
  /** Per row: fp16 mean |w| of the binarized weights (0 for a row with none). */
  alpha: Float32Array
  /** Per row: symmetric 8-bit absmax grid (fp16 scale) over the row's salient weights. */
  salientGrids: QuantGrid[]
}

export function partialBinaryGrid(W: Float32Array, rows: number, cols: number, mask: Uint8Array): PartialBinaryGrid {
  const alpha = new Float32Array(rows)
  const salientGrids: QuantGrid[] = []
  const salient = new Float32Array(cols)
  for (let r = 0; r < rows; r++) {
    let sum = 0,
      binary = 0,
      kept = 0
    for (let c = 0; c < cols; c++) {
      const w = W[r * cols + c]
      if (mask[r * cols + c]) salient[kept++] = w
      else {
        sum += Math.abs(w)
        binary++
      }
    }
    alpha[r] = binary > 0 ? roundToF16(sum / binary) : 0
    salientGrids.push(minmaxGrid(salient, 0, kept, 1, SALIENT_BITS, true, 'f16'))
  }
  return { rows, cols, mask, alpha, salientGrids }
}

/** The value a weight becomes: on its row's 8-bit grid when salient, else ±α (a zero weight takes +α). */
export function partialBinaryQuantizer(g: PartialBinaryGrid): ElementQuantizer {
  return (r, c, w) => (g.mask[r * g.cols + c] ? quantizeValue(w, g.salientGrids[r]) : w >= 0 ? g.alpha[r] : -g.alpha[r])
}

/** The picture for the UI and the report: where the salient weights are, pooled to ≤ 32 × 32 cells. */
export function salientPicture(g: PartialBinaryGrid): LearnedGrid {
  let k = 0
  for (const m of g.mask) k += m
  return { kind: 'salient', ...maskThumbnail(g.mask, g.rows, g.cols), salientFraction: k / g.mask.length }
}

/** Whether these params need the calibration Hessian (compensation, or Hessian-chosen salient weights). */
export function needsHessian(p: PbLlmParams): boolean {
  return p.compensate || (p.salient === 'hessian' && p.salientFraction > 0)
}

/**
 * Partially binarizes W [rows, cols] in place. `plan` (from planHessian on the layer's H) is needed when
 * needsHessian(p); without compensation each weight is quantized on its own.
 */
export async function pbLlmQuantize(
  W: Float32Array,
  rows: number,
  cols: number,
  p: PbLlmParams,
  plan: GptqHessianPlan | null,
  pool?: WorkerPool,
): Promise<PartialBinaryGrid> {
  if (needsHessian(p) && !plan) throw new WhittleError('validation', null, 'pb_llm: these params need a Hessian plan')
  const k = salientCount(p.salientFraction, rows, cols)
  const scores = p.salient === 'hessian' && k > 0 ? hessianScores(W, rows, cols, plan!) : magnitudeScores(W)
  const grid = partialBinaryGrid(W, rows, cols, selectSalient(scores, k))
  const quantize = partialBinaryQuantizer(grid)
  if (p.compensate) {
    const loop: GptqParams = {
      bits: SALIENT_BITS, // unused: the element quantizer replaces the uniform grids
      groupSize: -1,
      sym: true,
      damp: p.damp,
      blockSize: p.blockSize,
      actOrder: false,
      staticGroups: false,
    }
    await gptqQuantizePlanned(W, rows, cols, plan!, loop, pool, undefined, false, quantize)
  } else {
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) W[r * cols + c] = quantize(r, c, W[r * cols + c])
  }
  return grid
}

/** damp and block_size mean what they mean for GPTQ: declared there, once. */
const GPTQ_LOOP_PARAMS = GPTQ_PARAMS.filter((s) => s.name === 'damp' || s.name === 'block_size')

export const PB_LLM_PARAMS: readonly ParamSpec[] = [
  numberParam('salient_fraction', 0.1, 0, 1, 'Fraction of weights kept at 8 bits; the rest are binarized', 0.01),
  choiceParam(
    'salient',
    'hessian',
    ['magnitude', 'hessian'],
    "How salient weights are chosen: by |w|, or by SparseGPT's w² / [H⁻¹]ii² from the calibration Hessian",
  ),
  boolParam('compensate', true, "GPTQ's error feedback: each column's error goes into the columns not yet done"),
  ...GPTQ_LOOP_PARAMS,
]

export const pbLlm: CompressionMethod<PbLlmParams> = {
  name: 'pb_llm',
  kind: 'quantize',
  summary:
    'PB-LLM: a salient fraction of weights kept at 8 bits, the rest binarized (sign · per-row α), with GPTQ error feedback',
  params: PB_LLM_PARAMS,
  needs: { calibration: true, hessian: true },
  parseParams(raw, where) {
    const r = new ParamReader(raw, where, PB_LLM_PARAMS)
    const p: PbLlmParams = {
      salientFraction: r.num('salient_fraction'),
      salient: r.oneOf<SalientBy>('salient'),
      compensate: r.bool('compensate'),
      damp: r.num('damp'),
      blockSize: r.int('block_size'),
    }
    r.done()
    return p
  },
  predict: (p, rows, cols) => ({ bitsPerWeight: pbLlmBitsPerWeight(p, rows, cols), format: pbLlmFormat(p) }),
  async compressGroup(ctx) {
    const H = ctx.input?.hessian
    // Linears reading one input share its Hessian: factor it once per damp.
    const plans = new Map<number, GptqHessianPlan>()
    const outcomes: LinearOutcome[] = []
    for (const l of ctx.linears) {
      const p = l.params
      // A NaN or infinity would poison its row's α and the Hessian scores without a word.
      if (!l.weight.every(Number.isFinite))
        throw new WhittleError('validation', null, `pb_llm: ${l.name} has non-finite weights`)
      let plan: GptqHessianPlan | null = null
      if (needsHessian(p)) {
        if (!H)
          throw new WhittleError(
            'validation',
            null,
            `pb_llm: layer ${ctx.layer} ${ctx.group} has no calibration Hessian`,
          )
        plan = plans.get(p.damp) ?? null
        if (!plan)
          plans.set(p.damp, (plan = await planHessianAsync(H, l.cols, { damp: p.damp, actOrder: false }, ctx.pool)))
      }
      const grid = await pbLlmQuantize(l.weight, l.rows, l.cols, p, plan, ctx.pool)
      outcomes.push({
        name: l.name,
        bitsPerWeight: pbLlmBitsPerWeight(p, l.rows, l.cols),
        format: pbLlmFormat(p),
        grid: salientPicture(grid),
      })
    }
    return outcomes
  },
}
