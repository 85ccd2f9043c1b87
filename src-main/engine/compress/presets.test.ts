// Every bundled preset is a valid recipe whose steps' params parse with their methods.

import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { getMethod } from './methods'
import { loadPresets } from './presets'
import { validateRecipe } from './recipe/recipe'

describe('bundled presets', () => {
  it('validate, and their params parse', async () => {
    const presets = await loadPresets(path.resolve(__dirname, '../../../resources/recipes'))
    expect(presets.map((p) => p.id)).toEqual(
      expect.arrayContaining(['gptq-4bit', 'wanda-50', 'sparsegpt-50', 'sparsegpt-2of4', 'magnitude-50']),
    )
    for (const p of presets) {
      const recipe = validateRecipe(p.recipe)
      for (const [i, step] of recipe.steps.entries())
        getMethod(step.method, `${p.id} step ${i + 1}`).parseParams(step.params, `${p.id} step ${i + 1}`)
    }
  })
})
