import { describe, expect, it } from 'vitest'
import type { HeadImportance } from '@contract/api'
import {
  defaultDescending,
  descendingRanks,
  formatCorrelation,
  headRows,
  sortHeadRows,
  type HeadSortKey,
} from './head-table'

describe('head table', () => {
  /** Rank by definition: one more than the number of strictly larger values. */
  function competitionRank(values: number[], i: number): number {
    return values.filter((v) => v > values[i]).length + 1
  }

  it('ranks the largest value 1 and gives ties the best rank of their run', () => {
    const values = [0.3, 0.9, 0.3, 0.1, 0.9, 0.5]
    const ranks = descendingRanks(values)
    values.forEach((_, i) => expect(ranks[i]).toBe(competitionRank(values, i)))
    expect(ranks).toEqual([4, 1, 4, 6, 1, 3])
  })

  it('ranks non-finite values after every finite one', () => {
    expect(descendingRanks([Number.NaN, 1, 2])).toEqual([3, 2, 1])
  })

  const importance: HeadImportance = {
    layers: 2,
    heads: 3,
    samples: 4,
    seqlen: 16,
    baselineNll: 1.5,
    rankCorrelation: 0.5,
    ablation: [
      [0.02, -0.01, 0.05],
      [0.03, 0.02, 0.001],
    ],
    proxy: [
      [0.4, 0.1, 0.9],
      [0.5, 0.45, 0.2],
    ],
  }

  it('makes one row per head with both measures and their ranks', () => {
    const rows = headRows(importance)
    expect(rows).toHaveLength(6)
    const all = rows.map((r) => r.ablation)
    for (const r of rows) {
      expect(r.ablation).toBe(importance.ablation[r.layer][r.head])
      expect(r.proxy).toBe(importance.proxy[r.layer][r.head])
      expect(r.ablationRank).toBe(all.filter((v) => v > r.ablation).length + 1)
    }
    expect(rows.find((r) => r.layer === 0 && r.head === 2)).toMatchObject({ ablationRank: 1, proxyRank: 1 })
  })

  it('sorts by any column in either direction, ties in model order', () => {
    const rows = headRows(importance)
    const keys: HeadSortKey[] = ['layer', 'head', 'ablation', 'proxy', 'ablationRank', 'proxyRank']
    for (const key of keys) {
      for (const descending of [true, false]) {
        const sorted = sortHeadRows(rows, key, descending)
        expect(sorted).toHaveLength(rows.length)
        for (let i = 1; i < sorted.length; i++) {
          const [a, b] = [sorted[i - 1], sorted[i]]
          if (a[key] === b[key]) expect(a.layer * 100 + a.head).toBeLessThan(b.layer * 100 + b.head)
          else expect(descending ? a[key] > b[key] : a[key] < b[key]).toBe(true)
        }
      }
    }
    // The 0.02 tie under ablation: layer 0 head 0 before layer 1 head 1.
    expect(sortHeadRows(rows, 'ablation', true).map((r) => `${r.layer}.${r.head}`)).toEqual([
      '0.2',
      '1.0',
      '0.0',
      '1.1',
      '1.2',
      '0.1',
    ])
  })

  it('sorts non-finite values last whichever the direction', () => {
    const rows = headRows({
      ...importance,
      proxy: [
        [Number.NaN, 0.1, 0.9],
        [0.5, 0.45, 0.2],
      ],
    })
    expect(sortHeadRows(rows, 'proxy', true).at(-1)).toMatchObject({ layer: 0, head: 0 })
    expect(sortHeadRows(rows, 'proxy', false).at(-1)).toMatchObject({ layer: 0, head: 0 })
  })

  it('starts measures from the most important, indices and ranks from the first', () => {
    expect(defaultDescending('ablation')).toBe(true)
    expect(defaultDescending('proxy')).toBe(true)
    expect(defaultDescending('layer')).toBe(false)
    expect(defaultDescending('ablationRank')).toBe(false)
  })

  it('writes the rank correlation with two decimals', () => {
    expect(formatCorrelation(0.7234)).toBe('Spearman ρ = 0.72')
    expect(formatCorrelation(-0.105)).toBe('Spearman ρ = -0.10')
    expect(formatCorrelation(Number.NaN)).toContain('undefined')
  })
})
