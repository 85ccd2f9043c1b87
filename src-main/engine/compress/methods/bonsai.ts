// Bonsai (Dery et al. 2024, "Everybody prune now"): forward-only structured pruning of the Llama family.
// Units are attention head groups and MLP neurons (compress/structure/unit-masks.ts). Their importance
// comes from the losses of randomly sub-sampled sub-models, regressed on the keep masks (ridge, seeded;
// no gradients), over a few rounds (compress/structure/bonsai-search.ts); the least important go until
// the model has lost `reduction` of its parameters, and the result is physically smaller: heads cut out
// as prune_heads does, intermediate_size reduced.
// `by: magnitude` (weight norms) and `by: random` select the same way from other scores: the baselines.

import { createForward } from '../../forward'
import { WhittleError } from '../../errors'
import { removeUnits } from '../structure/remove-units'
import { bonsaiSearch } from '../structure/bonsai-search'
import { magnitudeScores, randomScores } from '../structure/unit-importance'
import { selectUnits, type UnitSelection } from '../structure/unit-selection'
import { unitLayout, type UnitLayout } from '../structure/unit-masks'
import { boolParam, choiceParam, intParam, numberParam, type ParamSpec } from '../../../contract/method-params'
import type { CompressionMethod, StructureContext } from './method'
import { ParamReader } from './params'

export interface BonsaiParams {
  /** Fraction of the model's parameters to remove. */
  reduction: number
  by: 'regression' | 'magnitude' | 'random'
  rounds: number
  samples: number
  keep: number
  sampleWindows: number
  ridge: number
  seed: number
  uniform: boolean
}

export const BONSAI_PARAMS: readonly ParamSpec[] = [
  numberParam('reduction', 0.2, 0.01, 0.9, "Fraction of the model's parameters to remove", 0.05),
  choiceParam(
    'by',
    'regression',
    ['regression', 'magnitude', 'random'],
    "Unit importance: Bonsai's regression of sub-model losses on their masks, weight norms, or random (baselines)",
  ),
  intParam('rounds', 4, 1, 100, 'Rounds of sampling and removal, each taking an equal share of the budget'),
  intParam('samples', 64, 2, 100000, 'Sub-models sampled per round (in complementary pairs)'),
  numberParam('keep', 0.5, 0.05, 0.95, 'Probability that a sampled sub-model keeps each candidate unit', 0.05),
  intParam('sample_windows', 4, 1, 4096, 'Calibration windows each sub-model is measured on (the first ones)'),
  numberParam('ridge', 0.1, 0, 1e6, "Ridge penalty of the regression, relative to the masks' variance", 0.05),
  intParam('seed', 0, 0, 2 ** 31 - 1, 'Seed of the sub-model draws (and of by: random)'),
  boolParam(
    'uniform',
    true,
    'The same number of neurons from every layer (a plain config); false: per-layer widths (whittle_intermediate_sizes)',
  ),
]

/** The units to keep: Bonsai's search, or the baselines' scores under the same budget and rules. */
async function choose(
  ctx: StructureContext<BonsaiParams>,
  layout: UnitLayout,
  target: number,
): Promise<{ selection: UnitSelection; note: string }> {
  const p = ctx.params
  if (p.by !== 'regression') {
    const scores = p.by === 'magnitude' ? await magnitudeScores(ctx.view, layout) : randomScores(layout, p.seed)
    return {
      selection: selectUnits(layout, scores, target, { uniform: p.uniform, split: 'proportional' }),
      note: p.by === 'magnitude' ? 'by weight norm' : `at random (seed ${p.seed})`,
    }
  }
  if (!ctx.windows?.length)
    throw new WhittleError('validation', null, 'bonsai needs calibration windows to measure its sub-models')
  const windows = ctx.windows.slice(0, p.sampleWindows)
  const forward = await createForward(ctx.pool, ctx.view)
  try {
    const selection = await bonsaiSearch(forward, layout, windows, {
      target,
      rounds: p.rounds,
      samples: p.samples,
      keep: p.keep,
      ridge: p.ridge,
      seed: p.seed,
      uniform: p.uniform,
      signal: ctx.signal,
      onProgress: (f, m) => ctx.onProgress?.(0.9 * f, m),
    })
    return {
      selection,
      note: `by regression (${p.rounds} rounds of ${p.samples} sub-models, ${windows.length} windows each)`,
    }
  } finally {
    forward.close()
  }
}

export const bonsai: CompressionMethod<BonsaiParams> = {
  name: 'bonsai',
  kind: 'structure',
  summary:
    'Bonsai: remove attention heads and MLP neurons ranked by forward passes of sampled sub-models (no gradients); a smaller model',
  params: BONSAI_PARAMS,
  needs: { calibration: true, hessian: false },
  parseParams(raw, where) {
    const r = new ParamReader(raw, where, BONSAI_PARAMS)
    const params: BonsaiParams = {
      reduction: r.num('reduction'),
      by: r.oneOf<BonsaiParams['by']>('by'),
      rounds: r.int('rounds'),
      samples: r.int('samples'),
      keep: r.num('keep'),
      sampleWindows: r.int('sample_windows'),
      ridge: r.num('ridge'),
      seed: r.int('seed'),
      uniform: r.bool('uniform'),
    }
    r.done()
    return params
  },
  predict: () => ({ bitsPerWeight: 0, format: 'heads and neurons removed' }),
  async compressGroup() {
    throw new WhittleError('validation', null, 'bonsai works on the whole model, not on single Linears')
  },
  async restructure(ctx) {
    const p = ctx.params
    const before = ctx.view.files.tensors.reduce((s, t) => s + t.shape.reduce((x, y) => x * y, 1), 0)
    const layout = unitLayout(ctx.view)
    const target = Math.ceil(p.reduction * before)
    const { selection, note } = await choose(ctx, layout, target)
    const g = layout.headsPerGroup
    const a = ctx.view.arch
    const { view, renames } = await removeUnits(ctx.view, layout, selection)
    const widths = selection.neurons.map((n) => n.length)
    const after = view.files.tensors.reduce((s, t) => s + t.shape.reduce((x, y) => x * y, 1), 0)
    ctx.onProgress?.(1, 'units removed')
    return {
      view,
      ...(renames ? { renames } : {}),
      changed: [],
      note:
        `bonsai ${note}: ${a.heads} → ${selection.groups[0].length * g} heads, ` +
        `intermediate size ${a.intermediateSize} → ${p.uniform ? widths[0] : `[${widths.join(', ')}]`}, ` +
        `${before} → ${after} parameters (${((1 - after / before) * 100).toFixed(1)}% fewer)`,
    }
  },
}
