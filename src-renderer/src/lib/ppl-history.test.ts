import { describe, expect, it } from 'vitest'
import { formatChange, historyRows, type PerplexityRun } from './ppl-history'

describe('perplexity history', () => {
  function run(id: number, modelName: string, ppl: number, over: Partial<PerplexityRun> = {}): PerplexityRun {
    return {
      id,
      modelName,
      modelPath: `/m/${modelName}`,
      text: '/t/eval.txt',
      seqlen: 256,
      protocol: 'gptq',
      windows: 100,
      tokens: 25600,
      ppl,
      meanNll: Math.log(ppl),
      ...over,
    }
  }

  it('compares each run with the first run on the same text, seqlen, windows and protocol', () => {
    const runs = [
      run(1, 'orig', 4),
      run(2, 'orig', 4.4, { seqlen: 128 }),
      run(3, 'q4', 4.2),
      run(4, 'q4', 4.62, { seqlen: 128 }),
      run(5, 'q4', 5, { windows: 10 }),
      run(6, 'q4', 5, { text: '/t/other.txt' }),
      run(7, 'q4', 3.9, { protocol: 'llama.cpp' }),
    ]
    const rows = historyRows(runs)
    expect(rows.map((r) => r.baseline?.id ?? null)).toEqual([null, null, 1, 2, null, null, null])
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
