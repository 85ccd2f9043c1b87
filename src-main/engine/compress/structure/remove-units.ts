// Head groups and MLP neurons removed physically, as a unit selection says (Bonsai, CoFi): the heads cut
// out as prune_heads does (the same count in every layer), then intermediate_size reduced
// (slice-neurons.ts: uniform, or per-layer widths under whittle_intermediate_sizes).

import type { ModelView } from '../../model/model-view'
import { restructureModel, type KeptHeads } from './restructure'
import { sliceNeurons } from './slice-neurons'
import type { UnitLayout } from './unit-masks'
import type { UnitSelection } from './unit-selection'

/** The smaller model keeping `selection`'s units, and the tensor renames when heads went. */
export async function removeUnits(
  view: ModelView,
  layout: UnitLayout,
  selection: UnitSelection,
): Promise<{ view: ModelView; renames?: Map<string, string> }> {
  const g = layout.headsPerGroup
  const heads = new Map<number, KeptHeads>(
    selection.groups.map((kv, l) => [l, { kv, q: kv.flatMap((j) => Array.from({ length: g }, (_, i) => j * g + i)) }]),
  )
  const fewerHeads = selection.groups[0].length < layout.groups
  const headed = fewerHeads
    ? await restructureModel(view, { keepLayers: Array.from({ length: layout.layers }, (_, i) => i), heads })
    : { view, renames: undefined }
  return {
    view: await sliceNeurons(headed.view, selection.neurons),
    ...(headed.renames ? { renames: headed.renames } : {}),
  }
}
