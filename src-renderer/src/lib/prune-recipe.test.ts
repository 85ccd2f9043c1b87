import { describe, expect, it } from 'vitest'
import type { RecipeDoc } from '@contract/api'
import { DEFAULT_PRUNE_FORM, formFromRecipe, pruneParams, withPruning } from './prune-recipe'
import { TEST_CATALOGUE as C } from '../testing/method-catalogue'

describe('prune recipe', () => {
  it('turns the form into step params', () => {
    expect(pruneParams(C, DEFAULT_PRUNE_FORM)).toEqual({ sparsity: 0.5 })
    expect(
      pruneParams(C, { ...DEFAULT_PRUNE_FORM, method: 'magnitude', sparsityPercent: 62.5, scope: 'global' }),
    ).toEqual({ sparsity: 0.625, scope: 'global' })
    expect(pruneParams(C, { ...DEFAULT_PRUNE_FORM, pattern: '2:4' })).toEqual({ pattern: '2:4' })
    expect(pruneParams(C, { ...DEFAULT_PRUNE_FORM, method: 'sparsegpt', joint4bit: true })).toEqual({
      sparsity: 0.5,
      bits: 4,
      group_size: 128,
    })
  })

  it('puts the pruning step first, replaces an earlier one, keeps other steps and targets', () => {
    const recipe: RecipeDoc = { steps: [{ method: 'rtn', params: { bits: 4 } }] }
    const a = withPruning(C, recipe, DEFAULT_PRUNE_FORM)
    expect(a.steps.map((s) => s.method)).toEqual(['wanda', 'rtn'])
    expect(a.calibration).toEqual({ samples: 128, seqlen: 256, seed: 0 })
    const targeted = { ...a, steps: [{ ...a.steps[0], targets: { include: ['mlp'], exclude: [] } }, a.steps[1]] }
    const b = withPruning(C, targeted, { ...DEFAULT_PRUNE_FORM, method: 'sparsegpt', thenGptq: true })
    expect(b.steps.map((s) => s.method)).toEqual(['sparsegpt', 'rtn', 'gptq'])
    expect(b.steps[0].targets).toEqual({ include: ['mlp'], exclude: [] })
    expect(b.steps[2].params).toMatchObject({ bits: 4, preserve_zeros: true })
    expect(formFromRecipe(C, b)).toMatchObject({ method: 'sparsegpt', thenGptq: true, sparsityPercent: 50 })
    expect(withPruning(C, b, { ...DEFAULT_PRUNE_FORM, thenGptq: false }).steps.map((s) => s.method)).toEqual([
      'wanda',
      'rtn',
    ])
    expect(formFromRecipe(C, recipe)).toBeNull()
  })

  it('offers scope and joint bits only to pruners that declare them, and calibration only where needed', () => {
    expect(pruneParams(C, { ...DEFAULT_PRUNE_FORM, method: 'wanda', scope: 'global', joint4bit: true })).toEqual({
      sparsity: 0.5,
    })
    const magnitudeOnly = withPruning(C, { steps: [] }, { ...DEFAULT_PRUNE_FORM, method: 'magnitude' })
    expect(magnitudeOnly.calibration).toBeUndefined()
    expect(
      withPruning(C, { steps: [] }, { ...DEFAULT_PRUNE_FORM, method: 'magnitude', thenGptq: true }).calibration,
    ).toEqual({ samples: 128, seqlen: 256, seed: 0 })
  })
})
