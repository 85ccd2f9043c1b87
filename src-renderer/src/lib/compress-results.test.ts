import { describe, expect, it } from 'vitest'
import type { CompressedTensor, RecipeDoc } from '@contract/api'
import { compressSpec, describeParams, formatPplChange, nextSort, pplChange, sortTensors } from './compress-results'

const recipe: RecipeDoc = { steps: [{ method: 'rtn', params: { bits: 4 } }] }

describe('compress job spec', () => {
  it("sends what was typed, trimmed and inside the engine's limits", () => {
    const spec = compressSpec('m1', recipe, { evalText: '  /data/wiki.txt ', seqlen: 512, maxEvalWindows: 64 })
    expect(spec).toEqual({
      kind: 'compress',
      modelId: 'm1',
      recipe,
      seqlen: 512,
      evalText: '/data/wiki.txt',
      maxEvalWindows: 64,
    })
    // A copy: the job never holds the editor's object.
    expect(spec.recipe).not.toBe(recipe)
  })

  it('leaves out empty fields and falls back to seqlen 256', () => {
    expect(compressSpec('m1', recipe, { evalText: '', seqlen: '', maxEvalWindows: '' })).toEqual({
      kind: 'compress',
      modelId: 'm1',
      recipe,
      seqlen: 256,
    })
    expect(compressSpec('m1', recipe, { evalText: '', seqlen: 1e9, maxEvalWindows: 0 })).toMatchObject({
      seqlen: 8192,
      maxEvalWindows: 1,
    })
  })
})

describe('perplexity change', () => {
  it('is the difference and its share of the original', () => {
    const c = pplChange(4, 4.3)!
    expect(c.delta).toBeCloseTo(0.3, 12)
    expect(c.relative).toBeCloseTo(0.075, 12)
    expect(formatPplChange(c)).toBe('+0.3000 (+7.50%)')
    expect(formatPplChange(pplChange(5, 4)!)).toBe('−1.0000 (−20.00%)')
    expect(pplChange(null, 4)).toBeNull()
    expect(pplChange(4, Number.NaN)).toBeNull()
  })
})

describe('per-tensor table order', () => {
  const t = (name: string, out: number | null, bpw: number): CompressedTensor => ({
    name,
    layer: 0,
    role: 'q',
    step: 0,
    method: 'rtn',
    format: 'w4',
    shape: [1, 1],
    bitsPerWeight: bpw,
    relWeightError: 0.1,
    relOutputError: out,
    sparsity: 0,
  })
  const rows = [t('layers.2.q', 0.2, 4), t('layers.10.q', null, 8), t('layers.1.q', 0.5, 4), t('layers.3.q', 0.2, 3)]

  it('sorts measures numerically with missing ones last in both directions', () => {
    const names = (key: 'relOutputError' | 'bitsPerWeight' | 'name', descending: boolean): string[] =>
      sortTensors(rows, { key, descending }).map((r) => r.name)
    expect(names('relOutputError', true)).toEqual(['layers.1.q', 'layers.2.q', 'layers.3.q', 'layers.10.q'])
    expect(names('relOutputError', false)).toEqual(['layers.2.q', 'layers.3.q', 'layers.1.q', 'layers.10.q'])
    // Ties keep the engine's order.
    expect(names('bitsPerWeight', false)).toEqual(['layers.3.q', 'layers.2.q', 'layers.1.q', 'layers.10.q'])
    // Names compare their numbers as numbers: layer 10 after layer 3.
    expect(names('name', false)).toEqual(['layers.1.q', 'layers.2.q', 'layers.3.q', 'layers.10.q'])
    expect(rows[0].name).toBe('layers.2.q')
  })

  it('flips on a second click; a new measure starts with the worst first', () => {
    expect(nextSort({ key: 'name', descending: false }, 'name')).toEqual({ key: 'name', descending: true })
    expect(nextSort({ key: 'name', descending: false }, 'relWeightError')).toEqual({
      key: 'relWeightError',
      descending: true,
    })
    expect(nextSort({ key: 'relWeightError', descending: true }, 'method')).toEqual({
      key: 'method',
      descending: false,
    })
  })
})

describe('describeParams', () => {
  it('writes parameters as words, nested objects in braces, no JSON quotes', () => {
    expect(describeParams({ sparsity: 0.5, pattern: '2:4' })).toBe('sparsity 0.5 · pattern 2:4')
    expect(describeParams({ optimizer: { name: 'adamw', eps: 1e-8 }, layers: [1, 3] })).toBe(
      'optimizer {name adamw · eps 1e-8} · layers 1, 3',
    )
    expect(describeParams({})).toBe('defaults')
  })
})
