// A recipe's kv_cache field: read by the parser `whittle eval --kv` uses (so both accept and refuse the
// same texts), normalised as that parser writes settings back, kept through YAML, and refused with the
// field named.

import { describe, expect, it } from 'vitest'
import { WhittleError } from '../../errors'
import { kvCacheLabel, parseKvCacheSetting } from '../../forward/kv-cache-quant'
import { parseRecipeText, recipeKvCache, recipeToYaml, validateRecipe } from './recipe'

const STEPS = [{ method: 'rtn', params: { bits: 4 } }]

function refusal(f: () => unknown): WhittleError {
  try {
    f()
  } catch (e) {
    if (e instanceof WhittleError) return e
    throw e
  }
  throw new Error('expected a WhittleError')
}

describe('recipe kv_cache', () => {
  it('is absent unless given, and then the cache is not quantized', () => {
    const recipe = validateRecipe({ steps: STEPS })
    expect('kv_cache' in recipe).toBe(false)
    expect(recipeKvCache(recipe)).toBeNull()
  })

  it.each([
    ['token:4', { scheme: 'token', bits: 4 }, 'token:4'],
    ['KIVI:2', { scheme: 'kivi', bits: 2, residual: 0 }, 'kivi:2'],
    [' kivi:2:128 ', { scheme: 'kivi', bits: 2, residual: 128 }, 'kivi:2:128'],
    ['Q8_0', { scheme: 'ggml', type: 'q8_0' }, 'q8_0'],
    ['iq4_nl', { scheme: 'ggml', type: 'iq4_nl' }, 'iq4_nl'],
  ])('reads %j as eval --kv does', (text, setting, normal) => {
    const recipe = validateRecipe({ steps: STEPS, kv_cache: text })
    expect(recipe.kv_cache).toBe(normal)
    expect(recipeKvCache(recipe)).toEqual(setting)
    expect(recipeKvCache(recipe)).toEqual(parseKvCacheSetting(text))
    expect(kvCacheLabel(recipeKvCache(recipe)!)).toBe(normal)
  })

  it('refuses what eval --kv refuses, naming the field and repeating the parser objection', () => {
    for (const text of ['token:9', 'token', 'kivi:0', 'q8_0:4', 'fp8', 'kivi:2:x']) {
      const parserSays = refusal(() => parseKvCacheSetting(text))
      const e = refusal(() => validateRecipe({ steps: STEPS, kv_cache: text }))
      expect(e.code).toBe('validation')
      expect(e.message).toContain('recipe kv_cache:')
      expect(e.message).toContain(parserSays.message)
    }
    for (const value of [4, null, ['token:4'], { scheme: 'token' }]) {
      const e = refusal(() => validateRecipe({ steps: STEPS, kv_cache: value }))
      expect(e.code).toBe('validation')
      expect(e.message).toMatch(/recipe kv_cache: must be a KV-cache setting/)
    }
  })

  it('names the recipe file when read from one', () => {
    const e = refusal(() => parseRecipeText('steps: [{method: rtn}]\nkv_cache: token:12\n', '/tmp/r.yaml'))
    expect(e.code).toBe('validation')
    expect(e.file).toBe('/tmp/r.yaml')
    expect(e.message).toMatch(/kv_cache.*bits must be an integer from 1 to 8, not "12"/)
  })

  it('survives the YAML the export writes beside the weights, normalised', () => {
    const recipe = validateRecipe({ steps: STEPS, kv_cache: 'KIVI:4' })
    const yaml = recipeToYaml(recipe)
    expect(yaml).toMatch(/^kv_cache: kivi:4$/m)
    const again = parseRecipeText(yaml, 'whittle-recipe.yaml')
    expect(again.kv_cache).toBe('kivi:4')
    expect(recipeToYaml(validateRecipe({ steps: STEPS }))).not.toMatch(/kv_cache/)
  })

  it('stays with every value of a sweep', () => {
    const recipe = validateRecipe({
      steps: STEPS,
      kv_cache: 'q4_0',
      sweep: { step: 1, param: 'bits', values: [3, 4] },
    })
    expect(recipe.kv_cache).toBe('q4_0')
    expect(recipe.sweep?.values).toEqual([3, 4])
  })
})
