import { describe, expect, it } from 'vitest'
import type { HeadImportance } from '@contract/api'
import { activationSpec, baseName, intInRange, numberOf, perplexitySpec, probeSpec } from './analysis-requests'
import { defaultDescending, descendingRanks, formatCorrelation, headRows, sortHeadRows, type HeadSortKey } from './head-table'
import { formatChange, historyRows, type PerplexityRun } from './ppl-history'

describe('analysis requests', () => {
  it('reads number fields: numbers, numeric strings, and nothing for empty or junk', () => {
    expect(numberOf(12)).toBe(12)
    expect(numberOf(' 7 ')).toBe(7)
    expect(numberOf('')).toBeNull()
    expect(numberOf(null)).toBeNull()
    expect(numberOf(undefined)).toBeNull()
    expect(numberOf('abc')).toBeNull()
    expect(numberOf(Number.POSITIVE_INFINITY)).toBeNull()
    expect(intInRange(3.6, [1, 10])).toBe(4)
    expect(intInRange(-5, [1, 10])).toBe(1)
    expect(intInRange(1e12, [1, 10])).toBe(10)
    expect(intInRange('', [1, 10])).toBeNull()
  })

  it('leaves out the text and max windows when empty, so the engine uses the bundled text and every window', () => {
    expect(perplexitySpec('m', { text: '  ', seqlen: 512, maxWindows: '' })).toEqual({ kind: 'perplexity', modelId: 'm', seqlen: 512 })
    expect(perplexitySpec('m', { text: ' /data/wiki.txt ', seqlen: 128, maxWindows: 40 })).toEqual({
      kind: 'perplexity', modelId: 'm', seqlen: 128, text: '/data/wiki.txt', maxWindows: 40,
    })
  })

  it('keeps every number inside what the engine accepts', () => {
    expect(perplexitySpec('m', { text: '', seqlen: 1, maxWindows: 0 })).toMatchObject({ seqlen: 2, maxWindows: 1 })
    expect(perplexitySpec('m', { text: '', seqlen: null, maxWindows: null }).seqlen).toBe(256)
    expect(activationSpec('m', { threshold: -3, samples: 1e9, seqlen: 100000 })).toEqual({
      kind: 'activations', modelId: 'm', threshold: 0, calibration: { samples: 4096, seqlen: 8192 },
    })
  })

  it('falls back to the documented defaults: threshold 6, 128 windows for a capture, 16 for a probe, seqlen 256', () => {
    expect(activationSpec('m', { threshold: '', samples: '', seqlen: '' })).toEqual({
      kind: 'activations', modelId: 'm', threshold: 6, calibration: { samples: 128, seqlen: 256 },
    })
    expect(probeSpec('heads', 'm', { samples: null, seqlen: null })).toEqual({ kind: 'heads', modelId: 'm', calibration: { samples: 16, seqlen: 256 } })
    expect(probeSpec('layers', 'm', { samples: 4, seqlen: 64 })).toEqual({ kind: 'layers', modelId: 'm', calibration: { samples: 4, seqlen: 64 } })
  })

  it('names a file by the last part of its path on either platform', () => {
    expect(baseName('/a/b/tinystories_eval.txt')).toBe('tinystories_eval.txt')
    expect(baseName('C:\\texts\\wiki.txt')).toBe('wiki.txt')
  })
})

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
    layers: 2, heads: 3, samples: 4, seqlen: 16, baselineNll: 1.5, rankCorrelation: 0.5,
    ablation: [[0.02, -0.01, 0.05], [0.03, 0.02, 0.001]],
    proxy: [[0.4, 0.1, 0.9], [0.5, 0.45, 0.2]],
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
    expect(sortHeadRows(rows, 'ablation', true).map((r) => `${r.layer}.${r.head}`)).toEqual(['0.2', '1.0', '0.0', '1.1', '1.2', '0.1'])
  })

  it('sorts non-finite values last whichever the direction', () => {
    const rows = headRows({ ...importance, proxy: [[Number.NaN, 0.1, 0.9], [0.5, 0.45, 0.2]] })
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

describe('perplexity history', () => {
  function run(id: number, modelName: string, ppl: number, over: Partial<PerplexityRun> = {}): PerplexityRun {
    return { id, modelName, modelPath: `/m/${modelName}`, text: '/t/eval.txt', seqlen: 256, windows: 100, tokens: 25600, ppl, meanNll: Math.log(ppl), ...over }
  }

  it('compares each run with the first run on the same text, seqlen and windows', () => {
    const runs = [
      run(1, 'orig', 4),
      run(2, 'orig', 4.4, { seqlen: 128 }),
      run(3, 'q4', 4.2),
      run(4, 'q4', 4.62, { seqlen: 128 }),
      run(5, 'q4', 5, { windows: 10 }),
      run(6, 'q4', 5, { text: '/t/other.txt' }),
    ]
    const rows = historyRows(runs)
    expect(rows.map((r) => r.baseline?.id ?? null)).toEqual([null, null, 1, 2, null, null])
    expect(rows[2].change).toBeCloseTo(4.2 / 4 - 1, 12)
    expect(rows[3].change).toBeCloseTo(4.62 / 4.4 - 1, 12)
    expect(rows[0].change).toBeNull()
  })

  it('writes changes as signed percentages', () => {
    expect(formatChange(0.05)).toBe('+5.00 %')
    expect(formatChange(-0.0042)).toBe('−0.42 %')
    expect(formatChange(0.00001)).toBe('±0 %')
  })
})
