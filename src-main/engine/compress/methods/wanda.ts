// Wanda (Sun et al.): prune by |W_ij| · ‖X_j‖₂, where ‖X_j‖₂² is input channel j's squared L2 norm summed
// over each calibration window's tokens and averaged over the windows (the reference's scaler_row). The
// ⌊p·cols⌋ lowest scores of each output row are pruned after a stable sort, or the M − N lowest of every
// M consecutive inputs for N:M. No weight update. Statistics come from inputs through already-pruned
// layers, and all of a layer's Linears from one pass through the unpruned layer (as the reference).

import { WhittleError } from '../../errors'
import { parsePrune, PRUNE_PARAM_SPECS, type PruneParams } from '../prune/params'
import { pruneFormat, pruneNm, pruneRows, sparseBitsPerWeight } from '../prune/select'
import type { ParamSpec } from '../../../contract/method-params'
import type { CompressionMethod } from './method'
import { ParamReader } from './params'

const f = Math.fround

/** |W_ij| · sqrt(s_j) in f32, with s_j = Σx_j² / windows. */
export function wandaScores(
  W: Float32Array,
  rows: number,
  cols: number,
  sumSq: Float64Array,
  windows: number,
): Float32Array {
  const norm = new Float32Array(cols)
  for (let c = 0; c < cols; c++) norm[c] = Math.sqrt(f(sumSq[c] / windows))
  const score = new Float32Array(W.length)
  for (let r = 0; r < rows; r++)
    for (let c = 0; c < cols; c++) score[r * cols + c] = f(Math.abs(W[r * cols + c]) * norm[c])
  return score
}

export const WANDA_PARAMS: readonly ParamSpec[] = [...PRUNE_PARAM_SPECS]

export const wanda: CompressionMethod<PruneParams> = {
  name: 'wanda',
  kind: 'prune',
  summary: 'Wanda: zero the lowest |w|·‖x‖ per output row (calibration inputs), or N:M; no weight update',
  params: WANDA_PARAMS,
  needs: { calibration: true, hessian: false },
  parseParams(raw, where) {
    const r = new ParamReader(raw, where, WANDA_PARAMS)
    const p = parsePrune(r, where)
    r.done()
    return p
  },
  predict: (p) => ({
    bitsPerWeight: sparseBitsPerWeight(p.sparsity, p.pattern),
    format: pruneFormat(p.sparsity, p.pattern),
  }),
  async compressGroup(ctx) {
    const input = ctx.input
    if (!input || input.windows <= 0)
      throw new WhittleError('validation', null, `wanda: layer ${ctx.layer} ${ctx.group} has no calibration statistics`)
    return ctx.linears.map((l) => {
      const p = l.params
      const score = wandaScores(l.weight, l.rows, l.cols, input.sumSq, input.windows)
      if (p.pattern) pruneNm(l.weight, score, l.rows, l.cols, p.pattern)
      else pruneRows(l.weight, score, l.rows, l.cols, p.sparsity)
      return {
        name: l.name,
        bitsPerWeight: sparseBitsPerWeight(p.sparsity, p.pattern),
        format: pruneFormat(p.sparsity, p.pattern),
        ...(p.pattern ? { nm: p.pattern } : {}),
      }
    })
  },
}
