// Bonsai's search (Dery et al. 2024), on masks: the budget is removed over a few rounds. Each round
// measures what every unit still present carries (its mean |activation|, the prior), makes the least
// active ones candidates (twice the round's share, as the paper does), samples sub-models that drop
// candidates at random, regresses their losses on the masks, and removes the units whose presence helps
// least, together with those removed before, under the same head-count and width rules as the final
// model (unit-selection.ts). Forward passes only.

import type { CausalLM } from '../../forward'
import { throwIfCancelled } from '../../jobs/cancel'
import { regressionImportance } from './unit-importance'
import { fullMask, unitActivations, type UnitLayout, type UnitMask } from './unit-masks'
import { selectUnits, type UnitSelection } from './unit-selection'

export interface BonsaiSearchOptions {
  /** Parameters to remove in all. */
  target: number
  rounds: number
  /** Sub-models sampled per round. */
  samples: number
  keep: number
  ridge: number
  seed: number
  uniform: boolean
  signal?: AbortSignal
  onProgress?: (fraction: number, message: string) => void
}

/** Candidates of one kind in one layer: the `count` least active units still present. */
function leastActive(present: Uint8Array, activity: Float64Array, count: number): Uint8Array {
  const alive = Array.from(present.keys()).filter((i) => present[i])
  alive.sort((a, b) => activity[a] - activity[b] || a - b)
  const out = new Uint8Array(present.length)
  for (const i of alive.slice(0, count)) out[i] = 1
  return out
}

function maskOf(layout: UnitLayout, selection: UnitSelection): UnitMask {
  const m = fullMask(layout)
  m.groups.forEach((g, l) => {
    g.fill(0)
    for (const j of selection.groups[l]) g[j] = 1
  })
  m.neurons.forEach((n, l) => {
    n.fill(0)
    for (const i of selection.neurons[l]) n[i] = 1
  })
  return m
}

export async function bonsaiSearch(
  forward: CausalLM,
  layout: UnitLayout,
  windows: Int32Array[],
  options: BonsaiSearchOptions,
): Promise<UnitSelection> {
  const prunable =
    layout.layers * layout.groups * layout.groupParams + layout.neurons.reduce((s, n) => s + n, 0) * layout.neuronParams
  // Each round explores twice its share of every layer's units (at least one).
  const share = Math.min(1, (2 * options.target) / options.rounds / prunable)
  let base = fullMask(layout)
  let selection: UnitSelection | null = null
  for (let round = 1; round <= options.rounds; round++) {
    throwIfCancelled(options.signal)
    const activity = await unitActivations(forward, layout, windows, base, options.signal)
    const pick = (present: Uint8Array[], act: Float64Array[]): Uint8Array[] =>
      present.map((p, l) => {
        const alive = p.reduce((s, k) => s + k, 0)
        return leastActive(p, act[l], Math.max(1, Math.ceil(share * alive)))
      })
    const candidates: UnitMask = {
      groups: pick(base.groups, activity.groups),
      neurons: pick(base.neurons, activity.neurons),
    }
    const scores = await regressionImportance(forward, layout, windows, base, candidates, {
      samples: options.samples,
      keep: options.keep,
      ridge: options.ridge,
      seed: options.seed + round - 1,
      signal: options.signal,
      onProgress: (f, m) =>
        options.onProgress?.((round - 1 + f) / options.rounds, `round ${round}/${options.rounds}: ${m}`),
    })
    selection = selectUnits(layout, scores, Math.ceil((options.target * round) / options.rounds), {
      uniform: options.uniform,
      split: 'predicted',
    })
    base = maskOf(layout, selection)
  }
  return selection!
}
