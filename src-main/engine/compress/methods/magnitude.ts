// Magnitude pruning: zero the fraction p of smallest |w|, per Linear (the reference: one threshold per
// matrix), per output row, or globally across all the step's targets; or N:M by |w|. No calibration.

import { WhittleError } from '../../errors'
import { parsePrune, PRUNE_PARAM_SPECS, type PruneParams } from '../prune/params'
import { pruneFormat, pruneMatrix, pruneNm, pruneRows, sparseBitsPerWeight } from '../prune/select'
import { choiceParam, type ParamSpec } from '../../../contract/method-params'
import type { CompressionMethod, StepTarget } from './method'
import { ParamReader } from './params'

export type MagnitudeScope = 'layer' | 'row' | 'global'

export interface MagnitudeParams extends PruneParams {
  scope: MagnitudeScope
  /** Global scope: the |w| threshold over all targets, set by prepareStep. */
  globalThreshold?: number
}

const HISTOGRAM_BINS = 1 << 16

/**
 * The value at index ⌊p·N⌋ of all targets' |w| sorted, without holding them all: one pass for the
 * maximum, one for a histogram that finds the bin holding that index, one to sort just that bin.
 */
export async function globalMagnitudeThreshold(targets: StepTarget[], sparsity: number): Promise<number> {
  let total = 0,
    max = 0
  for (const t of targets) {
    const w = await t.read()
    total += w.length
    for (const v of w) max = Math.max(max, Math.abs(v))
  }
  const k = Math.min(total - 1, Math.floor(total * sparsity))
  if (max === 0) return 0
  const bin = (a: number): number => Math.min(HISTOGRAM_BINS - 1, Math.floor((a / max) * HISTOGRAM_BINS))
  const counts = new Float64Array(HISTOGRAM_BINS)
  for (const t of targets) for (const v of await t.read()) counts[bin(Math.abs(v))]++
  let below = 0,
    b = 0
  while (below + counts[b] <= k) below += counts[b++]
  const inBin: number[] = []
  for (const t of targets) for (const v of await t.read()) if (bin(Math.abs(v)) === b) inBin.push(Math.abs(v))
  inBin.sort((x, y) => x - y)
  return inBin[k - below]
}

export const MAGNITUDE_PARAMS: readonly ParamSpec[] = [
  ...PRUNE_PARAM_SPECS,
  choiceParam(
    'scope',
    'layer',
    ['layer', 'row', 'global'],
    'One threshold per Linear, per output row, or across all targets (not with a pattern)',
  ),
]

export const magnitude: CompressionMethod<MagnitudeParams> = {
  name: 'magnitude',
  kind: 'prune',
  summary: 'Zero the smallest |w| (per Linear, per row or global), or N:M; no calibration',
  params: MAGNITUDE_PARAMS,
  needs: { calibration: false, hessian: false },
  parseParams(raw, where) {
    const r = new ParamReader(raw, where, MAGNITUDE_PARAMS)
    const p: MagnitudeParams = { ...parsePrune(r, where), scope: r.oneOf<MagnitudeScope>('scope') }
    r.done()
    if (p.pattern && r.given('scope'))
      r.fail('scope', 'does not apply to an N:M pattern (each run of M inputs is its own scope)')
    return p
  },
  predict: (p) => ({
    bitsPerWeight: sparseBitsPerWeight(p.sparsity, p.pattern),
    format: pruneFormat(p.sparsity, p.pattern),
  }),
  async prepareStep(targets) {
    const global = targets.filter((t) => t.params.scope === 'global' && !t.params.pattern)
    if (global.length === 0) return
    const sparsities = new Set(global.map((t) => t.params.sparsity))
    if (sparsities.size > 1)
      throw new WhittleError(
        'validation',
        null,
        `magnitude: global scope needs one sparsity for all targets (got ${[...sparsities].join(', ')})`,
      )
    const threshold = await globalMagnitudeThreshold(global, global[0].params.sparsity)
    for (const t of global) t.params.globalThreshold = threshold
  },
  async compressGroup(ctx) {
    return ctx.linears.map((l) => {
      const p = l.params
      const score = l.weight.map(Math.abs)
      if (p.pattern) pruneNm(l.weight, score, l.rows, l.cols, p.pattern)
      else if (p.scope === 'row') pruneRows(l.weight, score, l.rows, l.cols, p.sparsity)
      else if (p.scope === 'global') {
        if (p.globalThreshold === undefined)
          throw new WhittleError(
            'validation',
            null,
            `magnitude: ${l.name} has no global threshold (prepareStep did not run)`,
          )
        for (let i = 0; i < score.length; i++) if (score[i] <= p.globalThreshold) l.weight[i] = 0
      } else pruneMatrix(l.weight, score, p.sparsity)
      return {
        name: l.name,
        bitsPerWeight: sparseBitsPerWeight(p.sparsity, p.pattern),
        format: `${pruneFormat(p.sparsity, p.pattern)}${p.pattern ? '' : ` per ${p.scope}`}`,
        ...(p.pattern ? { nm: p.pattern } : {}),
      }
    })
  },
}
