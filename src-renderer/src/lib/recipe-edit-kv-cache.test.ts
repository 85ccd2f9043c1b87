import { describe, expect, it } from 'vitest'
import type { RecipeDoc } from '@contract/api'
import { KV_CACHE_SETTINGS } from '@contract/kv-cache-settings'
import { kvCacheChoices, sameRecipe, setKvCache } from './recipe-edit'

const recipe: RecipeDoc = { steps: [{ method: 'rtn', params: { bits: 4 } }] }

describe('the recipe builder KV-cache select', () => {
  it('sets and clears kv_cache without touching the recipe it was given', () => {
    const set = setKvCache(recipe, ' q8_0 ')
    expect(set).toEqual({ ...recipe, kv_cache: 'q8_0' })
    expect(recipe).not.toHaveProperty('kv_cache')
    expect(setKvCache(set, undefined)).toEqual(recipe)
    expect(setKvCache(set, '')).toEqual(recipe)
  })

  it('counts a changed KV cache as a changed recipe (a preset reads as modified)', () => {
    expect(sameRecipe(recipe, setKvCache(recipe, 'token:4'))).toBe(false)
    expect(sameRecipe(setKvCache(recipe, 'token:4'), setKvCache(recipe, 'token:4'))).toBe(true)
    expect(sameRecipe(recipe, setKvCache(setKvCache(recipe, 'kivi:2'), undefined))).toBe(true)
  })

  it("offers the usual settings, and a loaded recipe's own when it is another", () => {
    expect(kvCacheChoices(undefined)).toEqual([...KV_CACHE_SETTINGS])
    expect(kvCacheChoices('kivi:2')).toEqual([...KV_CACHE_SETTINGS])
    expect(kvCacheChoices('kivi:2:128')).toEqual([...KV_CACHE_SETTINGS, 'kivi:2:128'])
    expect(KV_CACHE_SETTINGS).toEqual(expect.arrayContaining(['token:4', 'kivi:2', 'q8_0']))
  })
})
