// Unit selection under a parameter budget, on a small hand-made layout whose right answers are worked
// out by hand in the comments.

import { describe, expect, it } from 'vitest'
import type { UnitScores } from './unit-importance'
import type { UnitLayout } from './unit-masks'
import { selectUnits } from './unit-selection'

// 2 layers × (4 groups of 10 parameters + 6 neurons of 3): 116 prunable parameters.
const layout: UnitLayout = {
  layers: 2,
  groups: 4,
  headsPerGroup: 1,
  headDim: 2,
  neurons: [6, 6],
  groupParams: 10,
  neuronParams: 3,
}
const scores = (groups: number[][], neurons: number[][]): UnitScores => ({
  groups: groups.map((g) => Float64Array.from(g)),
  neurons: neurons.map((n) => Float64Array.from(n)),
})

describe('selectUnits', () => {
  const s = scores(
    [
      [5, 4, 6, 7],
      [9, 8, 1, 7],
    ],
    [
      [0.5, 0.1, 0.9, 0.2, 0.8, 0.7],
      [0.05, 0.6, 0.3, 0.4, 0.01, 0.9],
    ],
  )

  it('uniform, predicted: the cheaper of "2 neurons per layer" (0.3 + 0.06) and "a group per layer" (4 + 1)', () => {
    // 12 parameters: no group and ⌈12 / (2·3)⌉ = 2 neurons per layer, or one group per layer (20).
    const r = selectUnits(layout, s, 12, { uniform: true, split: 'predicted' })
    expect(r.groups).toEqual([
      [0, 1, 2, 3],
      [0, 1, 2, 3],
    ])
    expect(r.neurons).toEqual([
      [0, 2, 4, 5],
      [1, 2, 3, 5],
    ])
    expect(r.removedParams).toBe(12)
  })

  it('uniform, predicted: groups go when they predict less loss than the neurons would', () => {
    const cheapGroups = scores(
      [
        [0.01, 4, 6, 7],
        [9, 8, 0.01, 7],
      ],
      [
        [5, 5, 5, 5, 5, 5],
        [5, 5, 5, 5, 5, 5],
      ],
    )
    const r = selectUnits(layout, cheapGroups, 12, { uniform: true, split: 'predicted' })
    expect(r.groups).toEqual([
      [1, 2, 3],
      [0, 1, 3],
    ])
    expect(r.neurons.map((n) => n.length)).toEqual([6, 6])
    expect(r.removedParams).toBe(20)
  })

  it('per-layer widths: the lowest-scored neurons of all layers', () => {
    // ⌈12 / 3⌉ = 4 neurons: 0.01 and 0.05 (layer 1), 0.1 and 0.2 (layer 0).
    const r = selectUnits(layout, s, 12, { uniform: false, split: 'predicted' })
    expect(r.neurons).toEqual([
      [0, 2, 4, 5],
      [1, 2, 3, 5],
    ])
    const r2 = selectUnits(layout, s, 15, { uniform: false, split: 'predicted' })
    expect(r2.neurons).toEqual([
      [0, 2, 4, 5],
      [1, 3, 5],
    ])
  })

  it('proportional: heads and neurons give up the same share; at least one unit stays in every layer', () => {
    // 60 of 116: round(60 / 116 · 4) = 2 groups per layer (40; layer 1 loses 1 and 7), then ⌈20 / 6⌉ = 4
    // neurons per layer.
    const r = selectUnits(layout, s, 60, { uniform: true, split: 'proportional' })
    expect(r.groups.map((g) => g.length)).toEqual([2, 2])
    expect(r.groups[1]).toEqual([0, 1])
    expect(r.neurons.map((n) => n.length)).toEqual([2, 2])
    expect(r.removedParams).toBe(64)
    // At most 3 groups and 5 neurons per layer: 2 · (30 + 15) = 90.
    expect(() => selectUnits(layout, s, 91, { uniform: true, split: 'proportional' })).toThrow(
      /would leave a layer without heads or neurons/,
    )
    expect(selectUnits(layout, s, 90, { uniform: true, split: 'predicted' }).removedParams).toBe(90)
  })

  it('units already removed (−Infinity) go first at no cost; +Infinity ones only when forced', () => {
    const marked = scores(
      [
        [Infinity, Infinity, Infinity, Infinity],
        [Infinity, Infinity, Infinity, Infinity],
      ],
      [
        [-Infinity, Infinity, 0.3, Infinity, -Infinity, Infinity],
        [Infinity, -Infinity, Infinity, 0.2, Infinity, Infinity],
      ],
    )
    // 4 neurons: the three already gone, then 0.2; then 0.3 for 5.
    const r = selectUnits(layout, marked, 12, { uniform: false, split: 'predicted' })
    expect(r.neurons).toEqual([
      [1, 2, 3, 5],
      [0, 2, 4, 5],
    ])
    const more = selectUnits(layout, marked, 15, { uniform: false, split: 'predicted' })
    expect(more.neurons).toEqual([
      [1, 3, 5],
      [0, 2, 4, 5],
    ])
  })
})
