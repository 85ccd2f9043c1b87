// Layer dropping: remove whole decoder blocks, named by the user or the n most redundant by the
// angular distance between each block's input and output (the smallest distance changes the hidden state
// least; Gromov et al.). The model that remains has its layers renumbered and num_hidden_layers updated.

import { WhittleError } from '../../errors'
import { layerImportance } from '../../analysis/layer-importance'
import { createForward } from '../../forward'
import { restructureModel } from '../structure/restructure'
import { choiceParam, indexListParam, intParam, type ParamSpec } from '../../../contract/method-params'
import type { CompressionMethod } from './method'
import { ParamReader } from './params'

export interface DropLayersParams {
  layers: number[] | null
  count: number | null
}

/** The `count` layers with the smallest angular distance (ties: the later layer first, as deeper blocks are the usual candidates). */
export function mostRedundantLayers(angular: number[], count: number): number[] {
  return angular
    .map((d, i) => ({ d, i }))
    .sort((x, y) => x.d - y.d || y.i - x.i)
    .slice(0, count)
    .map((x) => x.i)
    .sort((a, b) => a - b)
}

export const DROP_LAYERS_PARAMS: readonly ParamSpec[] = [
  choiceParam(
    'by',
    'angular',
    ['angular'],
    "How count ranks layers: angular distance between a block's input and output",
  ),
  intParam('count', null, 1, 1 << 16, 'Layers to drop, the most redundant first (or give layers)'),
  indexListParam('layers', 'Layers to drop, e.g. [3, 4] (or give count)'),
]

export const dropLayers: CompressionMethod<DropLayersParams> = {
  name: 'drop_layers',
  kind: 'structure',
  summary: 'Remove decoder blocks, by hand or the most redundant by angular distance; layers renumbered',
  params: DROP_LAYERS_PARAMS,
  // Windows are used only to rank by importance (count); an explicit selection ignores them.
  needs: { calibration: true, hessian: false },
  parseParams(raw, where) {
    const r = new ParamReader(raw, where, DROP_LAYERS_PARAMS)
    r.oneOf('by')
    const count = r.optInt('count')
    const layers = r.optIntList('layers')
    r.done()
    if ((layers === null) === (count === null))
      r.fail(layers ? 'count' : 'layers', 'give exactly one of layers (a list) or count (chosen by angular distance)')
    return { layers, count }
  },
  predict: () => ({ bitsPerWeight: 0, format: 'layer removed' }),
  async compressGroup() {
    throw new WhittleError('validation', null, 'drop_layers works on the whole model, not on single Linears')
  },
  async restructure(ctx) {
    const L = ctx.view.arch.layers
    let drop = ctx.params.layers
    if (!drop) {
      const count = ctx.params.count!
      if (count >= L)
        throw new WhittleError(
          'validation',
          null,
          `drop_layers: cannot drop ${count} of ${L} layers; at least one must remain`,
        )
      if (!ctx.windows?.length)
        throw new WhittleError('validation', null, 'drop_layers by count needs calibration windows to rank the layers')
      const forward = await createForward(ctx.pool, ctx.view)
      try {
        const importance = await layerImportance(forward, ctx.windows, {
          signal: ctx.signal,
          onProgress: (f, m) => ctx.onProgress?.(0.9 * f, `ranking layers: ${m}`),
        })
        drop = mostRedundantLayers(importance.angularDistance, count)
      } finally {
        forward.close()
      }
    }
    const bad = drop.filter((l) => l >= L)
    if (bad.length)
      throw new WhittleError(
        'validation',
        null,
        `drop_layers: layer ${bad.join(', ')} does not exist (the model has layers 0–${L - 1})`,
      )
    if (drop.length >= L)
      throw new WhittleError('validation', null, `drop_layers: dropping all ${L} layers leaves no model`)
    const keep = Array.from({ length: L }, (_, i) => i).filter((i) => !drop!.includes(i))
    const { view, renames } = await restructureModel(ctx.view, { keepLayers: keep })
    return {
      view,
      renames,
      changed: [],
      note: `dropped layer${drop.length > 1 ? 's' : ''} ${drop.join(', ')} (${L} → ${keep.length})`,
    }
  },
}
