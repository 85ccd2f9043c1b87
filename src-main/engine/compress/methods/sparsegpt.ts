// SparseGPT (Frantar & Alistarh): one OBS pass over the columns, as GPTQ, that chooses a mask from
// w² / Hinv_cc² (per 128-column block for unstructured sparsity, every M columns for N:M) and feeds each
// pruned weight's error into the columns not yet done; optionally quantizing the kept weights in the same
// pass (sparse + 4-bit), with GPTQ's grids. The column loop and the Hessian plan are GPTQ's
// (gptq.ts): damping, dead inputs and blocks are the reference's.

import { WhittleError } from '../../errors'
import { uniformBitsPerWeight } from '../quant/grouping'
import { parsePrune, type PruneParams } from '../prune/params'
import { pruneFormat, sparseBitsPerWeight } from '../prune/select'
import { gptqQuantizePlanned, planHessianAsync, type GptqHessianPlan, type GptqParams } from './gptq'
import type { CompressionMethod, LinearOutcome } from './method'
import { ParamReader } from './params'
import { uniformFormat } from './rtn'

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

export const sparsegpt: CompressionMethod<SparseGptParams> = {
  name: 'sparsegpt',
  kind: 'prune',
  needs: { calibration: true, hessian: true },
  parseParams(raw, where) {
    const r = new ParamReader(raw, where)
    const prune = parsePrune(r, where)
    const damp = r.num('damp', 0.01, 0, 10)
    const blockSize = r.int('block_size', 128, 1, 1 << 16)
    const bits = raw.bits === undefined ? null : r.int('bits', 4, 2, 8)
    const groupSize = r.groupSize()
    const sym = r.bool('sym', false)
    const scaleDtype = r.oneOf('scale_dtype', 'f16', ['f16', 'f32'] as const)
    r.done()
    if (bits === null && (raw.group_size !== undefined || raw.sym !== undefined || raw.scale_dtype !== undefined)) {
      r.fail(raw.group_size !== undefined ? 'group_size' : raw.sym !== undefined ? 'sym' : 'scale_dtype', 'applies only with bits (joint quantization)')
    }
    if (prune.pattern && blockSize % prune.pattern.m !== 0) r.fail('block_size', `must be a multiple of M = ${prune.pattern.m} for an N:M pattern`)
    return { ...prune, damp, blockSize, quant: bits === null ? null : { bits, groupSize, sym, scaleDtype } }
  },
  predict: (p, _rows, cols) => ({ bitsPerWeight: bitsPerWeight(p, cols), format: format(p) }),
  async compressGroup(ctx) {
    const H = ctx.input?.hessian
    if (!H) throw new WhittleError('validation', null, `sparsegpt: layer ${ctx.layer} ${ctx.group} has no calibration Hessian`)
    const plans = new Map<number, GptqHessianPlan>()
    const outcomes: LinearOutcome[] = []
    for (const l of ctx.linears) {
      const p = l.params
      let plan = plans.get(p.damp)
      if (!plan) plans.set(p.damp, (plan = await planHessianAsync(H, l.cols, { damp: p.damp, actOrder: false }, ctx.pool)))
      const loop: GptqParams = {
        bits: p.quant?.bits ?? 8, groupSize: p.quant?.groupSize ?? -1, sym: p.quant?.sym ?? false, scaleDtype: p.quant?.scaleDtype,
        damp: p.damp, blockSize: p.blockSize, actOrder: false, staticGroups: false,
      }
      const { record } = await gptqQuantizePlanned(l.weight, l.rows, l.cols, plan, loop, ctx.pool, { sparsity: p.sparsity, pattern: p.pattern }, p.quant !== null)
      outcomes.push({
        name: l.name, bitsPerWeight: bitsPerWeight(p, l.cols), format: format(p),
        ...(record ? { record } : {}), ...(p.pattern ? { nm: p.pattern } : {}),
      })
    }
    return outcomes
  },
}
