// What CoFi removes once its gates are deterministic, to exactly Bonsai's budget rule (unit-selection.ts),
// with hidden dimensions beside the units: first the hidden dimensions whose gate is 0 go, but never more
// than the budget (the dimensions least likely to survive first); every unit's hidden-side size then
// shrinks with them, and the rest of the budget is met by units (selectUnits on the layout at the smaller
// hidden size), the units of sub-layers gated to 0 first.

import type { CofiGates } from './cofi-gates'
import type { UnitLayout } from './unit-masks'
import { selectUnits, type UnitSelection } from './unit-selection'

export interface CofiSelection {
  /** The kept hidden dimensions, ascending (empty without hidden gates: nothing to remove). */
  hidden: number[]
  units: UnitSelection
  /** Parameters the removal of hidden dimensions and units saves together. */
  removedParams: number
}

/** The unit layout of the model whose hidden size is `kept` instead of `hidden`: each unit's hidden side shrinks. */
export function layoutAtHidden(layout: UnitLayout, hidden: number, kept: number): UnitLayout {
  const g = layout.headsPerGroup,
    hd = layout.headDim,
    cut = hidden - kept
  // A group's q and o hold g·hd values per hidden dimension, its k and v hd each; a neuron's gate, up, down 1.
  return {
    ...layout,
    groupParams: layout.groupParams - cut * (2 * g + 2) * hd,
    neuronParams: layout.neuronParams - 3 * cut,
  }
}

/** Parameters removing `hidden − kept` hidden dimensions saves, every unit kept. */
export function hiddenRemovedParams(gates: CofiGates, kept: number): number {
  const layout = gates.layout,
    H = gates.hiddenSize
  const smaller = layoutAtHidden(layout, H, kept)
  const units = (l: UnitLayout): number =>
    layout.layers * layout.groups * l.groupParams + layout.neurons.reduce((a, n) => a + n, 0) * l.neuronParams
  const rest = gates.totalParams - units(layout)
  return units(layout) - units(smaller) + (rest * (H - kept)) / H
}

/** The hidden dimensions and units to remove for `target` parameters. */
export function selectCofi(
  gates: CofiGates,
  target: number,
  options: { uniform: boolean; keep: { groups: Float64Array[]; neurons: Float64Array[] } },
): CofiSelection {
  const layout = gates.layout,
    H = gates.hiddenSize
  let hidden: number[] = []
  let hiddenRemoved = 0
  let unitLayout = layout
  if (H > 0) {
    const z = gates.hiddenGates()
    // Most likely to survive first: z is monotonic in log α, so the non-zero gates lead.
    const order = Array.from({ length: H }, (_, k) => k).sort(
      (a, b) => gates.logAlpha[gates.hiddenIndex(b)] - gates.logAlpha[gates.hiddenIndex(a)],
    )
    let kept = Math.max(
      1,
      z.reduce((n, v) => n + (v !== 0 ? 1 : 0), 0),
    )
    while (kept < H && hiddenRemovedParams(gates, kept) > target) kept++
    hidden = order.slice(0, kept).sort((a, b) => a - b)
    hiddenRemoved = kept < H ? hiddenRemovedParams(gates, kept) : 0
    unitLayout = layoutAtHidden(layout, H, kept)
  }
  const unitTarget = target - hiddenRemoved
  const units: UnitSelection =
    unitTarget > 0
      ? selectUnits(unitLayout, options.keep, unitTarget, { uniform: options.uniform, split: 'predicted' })
      : {
          groups: Array.from({ length: layout.layers }, () => Array.from({ length: layout.groups }, (_, j) => j)),
          neurons: layout.neurons.map((n) => Array.from({ length: n }, (_, i) => i)),
          removedParams: 0,
        }
  return { hidden, units, removedParams: hiddenRemoved + units.removedParams }
}
