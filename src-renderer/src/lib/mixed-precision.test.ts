import { describe, expect, it } from 'vitest'
import type { CompressedTensor, RecipeDoc } from '@contract/api'
import {
  applyProposal,
  measuredBits,
  proposeBits,
  rankSensitivity,
  reassignableIn,
  storageFromRecipe,
  uniformBitsPerWeight,
  type SensitivityRow,
} from './mixed-precision'
import { TEST_CATALOGUE } from '../testing/method-catalogue'

function tensor(
  name: string,
  shape: [number, number],
  out: number | null,
  weight: number,
  extra: Partial<CompressedTensor> = {},
): CompressedTensor {
  return {
    name,
    layer: 0,
    role: 'q',
    step: 0,
    method: 'rtn',
    format: 'w4 g32 sym',
    shape,
    bitsPerWeight: 4.5,
    relWeightError: weight,
    relOutputError: out,
    sparsity: 0,
    ...extra,
  }
}

describe('storage formula', () => {
  it('adds an fp16 scale per group, and a bits-wide zero point when asymmetric', () => {
    expect(uniformBitsPerWeight(4, 4096, 128, false)).toBe(4 + 20 / 128)
    expect(uniformBitsPerWeight(4, 4096, 128, true)).toBe(4 + 16 / 128)
    // Per channel, or a group at least as wide as the row: one group per row.
    expect(uniformBitsPerWeight(3, 64, -1, false)).toBe(3 + 19 / 64)
    expect(uniformBitsPerWeight(8, 64, 128, false)).toBe(8 + 24 / 64)
  })

  it('reads the code width from the format', () => {
    expect(measuredBits({ format: 'w3 per-channel asym', bitsPerWeight: 3.3 })).toBe(3)
    expect(measuredBits({ format: 'w8 g16 asym', bitsPerWeight: 9.5 })).toBe(8)
    expect(measuredBits({ format: 'Q6_K', bitsPerWeight: 6.5625 })).toBe(6)
    expect(measuredBits({ format: 'nf4 b64', bitsPerWeight: 4.5 })).toBe(4)
  })
})

describe('sensitivity', () => {
  it('is the relative error times the share of parameters, output error first', () => {
    const rows = rankSensitivity([
      tensor('a', [10, 100], 0.08, 0.5),
      tensor('b', [10, 100], null, 0.01),
      tensor('c', [20, 100], 0.02, 0.9),
    ])
    expect(rows.map((r) => r.name)).toEqual(['a', 'c', 'b'])
    expect(rows.map((r) => r.share)).toEqual([0.25, 0.5, 0.25])
    expect(rows[0].sensitivity).toBeCloseTo(0.02, 12)
    expect(rows[1]).toMatchObject({ error: 0.02, errorKind: 'output' })
    expect(rows[2]).toMatchObject({ error: 0.01, errorKind: 'weight', module: 'b' })
  })

  it('counts a tensor once, as the last step that touched it left it', () => {
    const rows = rankSensitivity([
      tensor('a', [10, 10], 0.5, 0.5, { step: 0, method: 'prune' }),
      tensor('a', [10, 10], 0.1, 0.1, { step: 1 }),
      tensor('b', [10, 30], Number.NaN, 0.2),
    ])
    expect(rows).toHaveLength(2)
    expect(rows.find((r) => r.name === 'a')).toMatchObject({ step: 1, error: 0.1, share: 0.25 })
    // An unmeasurable output error falls back to the weight error.
    expect(rows.find((r) => r.name === 'b')).toMatchObject({ error: 0.2, errorKind: 'weight' })
  })
})

describe('bit proposal', () => {
  // Groups of 32 symmetric: every choice costs bits + 0.5, so the arithmetic below stays exact.
  const rows: SensitivityRow[] = rankSensitivity([
    tensor('a', [10, 100], 0.08, 1),
    tensor('b', [10, 100], 0.01, 1),
    tensor('c', [20, 100], 0.02, 1),
  ])
  const options = { choices: [8, 3, 4], storage: () => ({ groupSize: 32, sym: true }), reassignable: () => true }
  const bitsOf = (p: ReturnType<typeof proposeBits>): Record<string, number> =>
    Object.fromEntries(p.assignments.map((a) => [a.name, a.bits]))

  it('spends the budget where it removes the most estimated error per bit', () => {
    // Budget 5.0 code bits × 4000 params = 20000; all at 3 bits uses 12000.
    // Gains per added bit-param (error halves per bit): a 3→4 2e-5, c 3→4 5e-6, a 4→8 4.69e-6, b 3→4 2.5e-6.
    // a→4 (13000), c→4 (15000), a→8 (19000), b→4 (20000); c→8 would need 28000.
    const p = proposeBits(rows, { ...options, target: 5.5 })
    expect(bitsOf(p)).toEqual({ a: 8, b: 4, c: 4 })
    expect(p.bitsPerWeight).toBeCloseTo(5.5, 12)
    expect(p.feasible).toBe(true)
    expect(p.minimumBitsPerWeight).toBeCloseTo(3.5, 12)
    // Estimated: a 0.08/16 × 0.25, b 0.01 × 0.25, c 0.02 × 0.5.
    expect(p.sensitivityAfter).toBeCloseTo(0.00125 + 0.0025 + 0.01, 12)
    expect(p.sensitivityBefore).toBeCloseTo(0.02 + 0.0025 + 0.01, 12)
  })

  it('never goes above the target', () => {
    for (const target of [3.5, 3.9, 4.25, 4.5, 5, 6.3, 8.5, 20]) {
      const p = proposeBits(rows, { ...options, target })
      expect(p.bitsPerWeight).toBeLessThanOrEqual(target + 1e-9)
    }
    expect(bitsOf(proposeBits(rows, { ...options, target: 4.5 }))).toEqual({ a: 4, b: 4, c: 4 })
    expect(bitsOf(proposeBits(rows, { ...options, target: 100 }))).toEqual({ a: 8, b: 8, c: 8 })
  })

  it('says so when even the fewest bits exceed the target', () => {
    const p = proposeBits(rows, { ...options, target: 3 })
    expect(p.feasible).toBe(false)
    expect(bitsOf(p)).toEqual({ a: 3, b: 3, c: 3 })
    expect(p.bitsPerWeight).toBeCloseTo(3.5, 12)
  })

  it('keeps tensors whose method takes no bit width at what the run gave them', () => {
    const p = proposeBits(rows, { ...options, target: 100, reassignable: (r) => r.name !== 'c' })
    expect(p.assignments.find((a) => a.name === 'c')).toMatchObject({
      reassignable: false,
      bits: 4,
      bitsPerWeight: 4.5,
    })
    // c: 2000 params at 4.5; a, b: 1000 each at 8.5.
    expect(p.bitsPerWeight).toBeCloseTo((2000 * 4.5 + 2000 * 8.5) / 4000, 12)
  })

  it("reads each tensor's grouping from the recipe that produced it", () => {
    const recipe: RecipeDoc = {
      steps: [
        { method: 'rtn', params: { bits: 4, group_size: 32 } },
        { method: 'gguf', params: { type: 'Q4_K' } },
      ],
      overrides: { a: { sym: true, group_size: 64 } },
    }
    const storage = storageFromRecipe(TEST_CATALOGUE, recipe)
    const row = rows.find((r) => r.name === 'a')!
    expect(storage(row)).toEqual({ groupSize: 64, sym: true })
    expect(storage(rows.find((r) => r.name === 'b')!)).toEqual({ groupSize: 32, sym: false })
    // A method's own default grouping applies where the recipe names none (AWQ: groups of 128).
    expect(storageFromRecipe(TEST_CATALOGUE, { steps: [{ method: 'awq' }] })(row)).toEqual({
      groupSize: 128,
      sym: false,
    })
    expect(storageFromRecipe(TEST_CATALOGUE, { steps: [{ method: 'rtn' }] })(row)).toEqual({
      groupSize: -1,
      sym: false,
    })
    expect(reassignableIn(TEST_CATALOGUE, recipe)({ ...row, step: 0 })).toBe(true)
    expect(reassignableIn(TEST_CATALOGUE, recipe)({ ...row, step: 1 })).toBe(false)
  })
})

describe('accepting a proposal', () => {
  const recipe: RecipeDoc = {
    steps: [{ method: 'gptq', params: { bits: 4, group_size: 128 } }],
    overrides: { 'layers.0.mlp.up_proj': { bits: 3 }, 'mlp.down_proj': { bits: 8 } },
  }
  const assignment = (name: string, bits: number, reassignable = true) => ({
    name,
    module: name.replace(/\.weight$/, ''),
    step: 0,
    reassignable,
    measuredBits: 4,
    bits,
    bitsPerWeight: bits,
    params: 1,
    error: 0,
    sensitivity: 0,
  })

  it('writes bits only where the recipe would give other bits now', () => {
    const next = applyProposal(TEST_CATALOGUE, recipe, [
      assignment('layers.0.self_attn.q_proj.weight', 4),
      assignment('layers.0.self_attn.k_proj.weight', 8),
      assignment('layers.0.mlp.up_proj.weight', 4),
      assignment('layers.0.mlp.down_proj.weight', 8),
      assignment('layers.1.mlp.gate_proj.weight', 3, false),
    ])
    expect(next.overrides).toEqual({
      'layers.0.mlp.up_proj': { bits: 4 },
      'mlp.down_proj': { bits: 8 },
      'layers.0.self_attn.k_proj': { bits: 8 },
    })
    expect(recipe.overrides!['layers.0.mlp.up_proj']).toEqual({ bits: 3 })
  })

  it("counts a step without bits at the method's default", () => {
    const plain: RecipeDoc = { steps: [{ method: 'rtn' }] }
    expect(applyProposal(TEST_CATALOGUE, plain, [assignment('w', 4)])).toBe(plain)
    expect(applyProposal(TEST_CATALOGUE, plain, [assignment('w', 3)]).overrides).toEqual({ w: { bits: 3 } })
  })
})
