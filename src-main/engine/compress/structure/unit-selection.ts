// Which units to remove for a parameter budget, given a score per unit (unit-importance.ts).
// - Head groups: the same number from every layer (a config holds one head count), the lowest-scored
//   in each layer.
// - Neurons: uniform, the same number from every layer (a plain config, loadable by transformers), the
//   lowest-scored in each; or not, the lowest-scored across all layers (per-layer widths).
// How the budget splits between heads and neurons:
// - 'predicted' (scores that add up to a loss change, Bonsai's regression): every head count is tried and
//   the split whose removed units sum to the smallest predicted loss increase wins;
// - 'proportional' (scores that do not add up: norms, noise): heads and neurons give up the same share
//   of their parameters.
// Every layer keeps at least one group and one neuron. A score of −Infinity marks a unit already removed
// (it goes first, at no cost), +Infinity one that may go only when nothing else meets the budget.

import { WhittleError } from '../../errors'
import type { UnitScores } from './unit-importance'
import type { UnitLayout } from './unit-masks'

export interface UnitSelection {
  /** Per layer, the kept head groups (ascending). */
  groups: number[][]
  /** Per layer, the kept neurons (ascending). */
  neurons: number[][]
  /** Parameters the removal saves (at least the budget). */
  removedParams: number
}

export type BudgetSplit = 'predicted' | 'proportional'

interface Candidate {
  removedGroups: number[][]
  removedNeurons: number[][]
  /** Predicted loss increase: the finite scores of the removed units. */
  cost: number
  /** Removed units scored +Infinity. */
  forced: number
  params: number
}

/** Indices of `scores`, lowest first (ties: the lower index). */
function ascending(scores: Float64Array): number[] {
  return Array.from(scores.keys()).sort((a, b) => scores[a] - scores[b] || a - b)
}

function candidate(
  layout: UnitLayout,
  scores: UnitScores,
  target: number,
  headsPerLayer: number,
  uniform: boolean,
): Candidate | null {
  const L = layout.layers
  const removedGroups = scores.groups.map((s) => ascending(s).slice(0, headsPerLayer))
  let cost = 0,
    forced = 0
  const add = (v: number): void => {
    if (v === Infinity) forced++
    else if (v !== -Infinity) cost += v
  }
  removedGroups.forEach((ids, l) => ids.forEach((j) => add(scores.groups[l][j])))
  const rest = Math.max(0, target - L * headsPerLayer * layout.groupParams)
  let removedNeurons: number[][]
  if (uniform) {
    const perLayer = Math.ceil(rest / (L * layout.neuronParams))
    if (perLayer > Math.min(...layout.neurons) - 1) return null
    removedNeurons = scores.neurons.map((s) => ascending(s).slice(0, perLayer))
  } else {
    let count = Math.ceil(rest / layout.neuronParams)
    const all = scores.neurons.flatMap((s, l) => Array.from(s, (v, i) => ({ v, l, i })))
    all.sort((x, y) => x.v - y.v || x.l - y.l || x.i - y.i)
    removedNeurons = layout.neurons.map(() => [])
    for (const u of all) {
      if (count === 0) break
      if (removedNeurons[u.l].length === layout.neurons[u.l] - 1) continue
      removedNeurons[u.l].push(u.i)
      count--
    }
    if (count > 0) return null
  }
  removedNeurons.forEach((ids, l) => ids.forEach((i) => add(scores.neurons[l][i])))
  const neuronCount = removedNeurons.reduce((a, ids) => a + ids.length, 0)
  return {
    removedGroups,
    removedNeurons,
    cost,
    forced,
    params: L * headsPerLayer * layout.groupParams + neuronCount * layout.neuronParams,
  }
}

/** The units to keep so that at least `target` parameters go. */
export function selectUnits(
  layout: UnitLayout,
  scores: UnitScores,
  target: number,
  options: { uniform: boolean; split: BudgetSplit },
): UnitSelection {
  const L = layout.layers
  const neuronTotal = layout.neurons.reduce((a, n) => a + n, 0)
  const prunable = L * layout.groups * layout.groupParams + neuronTotal * layout.neuronParams
  const most = L * (layout.groups - 1) * layout.groupParams + (neuronTotal - L) * layout.neuronParams
  if (target > most)
    throw new WhittleError(
      'validation',
      null,
      `removing ${target} parameters would leave a layer without heads or neurons (at most ${most} of the ${prunable} in heads and MLP neurons can go)`,
    )
  const proportional = Math.min(layout.groups - 1, Math.round((target / prunable) * layout.groups))
  const counts = Array.from({ length: layout.groups }, (_, k) => k)
  // Proportional: its head count first, the others only if that one cannot meet the budget.
  const tried =
    options.split === 'proportional'
      ? [proportional, ...counts.filter((k) => k !== proportional).sort((a, b) => b - a)]
      : counts
  let best: Candidate | null = null
  for (const k of tried) {
    const c = candidate(layout, scores, target, k, options.uniform)
    if (!c) continue
    if (options.split === 'proportional') {
      best = c
      break
    }
    if (!best || c.forced < best.forced || (c.forced === best.forced && c.cost < best.cost)) best = c
  }
  if (!best)
    throw new WhittleError(
      'validation',
      null,
      `no selection of the same head count in every layer removes ${target} parameters while keeping a neuron in every layer; lower the reduction`,
    )
  const kept = (n: number, removed: number[]): number[] => {
    const gone = new Set(removed)
    return Array.from({ length: n }, (_, i) => i).filter((i) => !gone.has(i))
  }
  return {
    groups: best.removedGroups.map((ids) => kept(layout.groups, ids)),
    neurons: best.removedNeurons.map((ids, l) => kept(layout.neurons[l], ids)),
    removedParams: best.params,
  }
}
