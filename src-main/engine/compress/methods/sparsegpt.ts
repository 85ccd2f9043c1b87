// SparseGPT (Frantar & Alistarh): one OBS pass over the columns, as GPTQ, that chooses a mask from
// w² / Hinv_cc² (per 128-column block for unstructured sparsity, every M columns for N:M) and feeds each
// pruned weight's error into the columns not yet done; optionally quantizing the kept weights in the same
// pass (sparse + 4-bit), with GPTQ's grids. The column loop and the Hessian plan are GPTQ's
// (gptq.ts): damping, dead inputs and blocks are the reference's.

import { uniformBitsPerWeight } from '../quant/grouping'
import { parsePrune, PRUNE_PARAM_SPECS, type PruneParams } from '../prune/params'
import { pruneFormat, sparseBitsPerWeight } from '../prune/select'
import { gptqQuantizePlanned, type GptqParams } from './gptq'
import { planGroupThenDropHessian } from './gptq-plan'
import type { CompressionMethod, LinearOutcome } from './method'
import { ParamReader } from './params'
import { uniformFormat, uniformParamSpecs } from '../quant/uniform-format'
import { intParam, numberParam, type ParamSpec } from '../../../contract/method-params'

export interface SparseGptParams extends PruneParams {
  damp: number
  blockSize: number
  /** Joint quantization of the kept weights (GPTQ's grids), or null to keep them in float. */
  quant: Pick<GptqParams, 'bits' | 'groupSize' | 'sym' | 'scaleDtype'> | null
}

function format(p: SparseGptParams): string {
  return `${pruneFormat(p.sparsity, p.pattern)}${p.quant ? ` + ${uniformFormat(p.quant)}` : ''}`
}

function bitsPerWeight(p: SparseGptParams, cols: number): number {
  if (!p.quant) return sparseBitsPerWeight(p.sparsity, p.pattern)
  // Kept codes at `bits` plus the mask (or N:M indices), plus the grids' scales and zeros.
  const grid = uniformBitsPerWeight(p.quant.bits, cols, p.quant.groupSize, p.quant.sym) - p.quant.bits
  return sparseBitsPerWeight(p.sparsity, p.pattern, p.quant.bits) + grid
}

export const SPARSEGPT_PARAMS: readonly ParamSpec[] = [
  ...PRUNE_PARAM_SPECS,
  numberParam('damp', 0.01, 0, 10, 'Added to the Hessian diagonal, as a fraction of its mean', 0.001),
  intParam('block_size', 128, 1, 1 << 16, 'Columns per mask-selection block (a multiple of M for N:M)'),
  // Joint quantization of the kept weights: absent bits = none, and the others then do not apply.
  ...uniformParamSpecs(-1, null),
]

export const sparsegpt: CompressionMethod<SparseGptParams> = {
  name: 'sparsegpt',
  kind: 'prune',
  summary:
    'SparseGPT: OBS mask and weight reconstruction from the calibration Hessian, optionally with joint quantization',
  params: SPARSEGPT_PARAMS,
  needs: { calibration: true, hessian: true },
  parseParams(raw, where) {
    const r = new ParamReader(raw, where, SPARSEGPT_PARAMS)
    const prune = parsePrune(r, where)
    const damp = r.num('damp')
    const blockSize = r.int('block_size')
    const bits = r.optInt('bits')
    const groupSize = r.groupSize()
    const sym = r.bool('sym')
    const scaleDtype = r.oneOf<'f16' | 'f32'>('scale_dtype')
    r.done()
    const quantOnly = ['group_size', 'sym', 'scale_dtype'].find((k) => r.given(k))
    if (bits === null && quantOnly) r.fail(quantOnly, 'applies only with bits (joint quantization)')
    if (prune.pattern && blockSize % prune.pattern.m !== 0)
      r.fail('block_size', `must be a multiple of M = ${prune.pattern.m} for an N:M pattern`)
    return { ...prune, damp, blockSize, quant: bits === null ? null : { bits, groupSize, sym, scaleDtype } }
  },
  predict: (p, _rows, cols) => ({ bitsPerWeight: bitsPerWeight(p, cols), format: format(p) }),
  async compressGroup(ctx) {
    const plans = await planGroupThenDropHessian(ctx, 'sparsegpt', (p) => ({ damp: p.damp, actOrder: false }))
    const outcomes: LinearOutcome[] = []
    for (const [i, l] of ctx.linears.entries()) {
      const p = l.params
      const plan = plans[i]
      const loop: GptqParams = {
        bits: p.quant?.bits ?? 8,
        groupSize: p.quant?.groupSize ?? -1,
        sym: p.quant?.sym ?? false,
        scaleDtype: p.quant?.scaleDtype,
        damp: p.damp,
        blockSize: p.blockSize,
        actOrder: false,
        staticGroups: false,
      }
      const { record } = await gptqQuantizePlanned(
        l.weight,
        l.rows,
        l.cols,
        plan,
        loop,
        ctx.pool,
        { sparsity: p.sparsity, pattern: p.pattern },
        p.quant !== null,
      )
      outcomes.push({
        name: l.name,
        bitsPerWeight: bitsPerWeight(p, l.cols),
        format: format(p),
        ...(record ? { record } : {}),
        ...(p.pattern ? { nm: p.pattern } : {}),
      })
    }
    return outcomes
  },
}
