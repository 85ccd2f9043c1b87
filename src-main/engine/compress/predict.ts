// Size and bits per weight of a recipe's result, from the methods' storage formulas, before running it.

import type { CompressionPrediction } from '../../contract/api'
import type { LoadedModel } from '../model/loaded-model'
import { getMethod } from './methods'
import type { Recipe } from './recipe/recipe'
import { overrideFor, selectTargets } from './recipe/targets'
import { storageTotals } from './storage'

export function predictCompression(model: LoadedModel, recipe: Recipe): CompressionPrediction {
  const last = new Map<string, CompressionPrediction['tensors'][number] & { params: number }>()
  for (const [i, step] of recipe.steps.entries()) {
    const method = getMethod(step.method, `step ${i + 1}`)
    // Structural steps' savings depend on what they pick (by importance, at run time): not predicted.
    // Recovery steps train weights in place: they change no storage.
    if (method.kind === 'structure' || method.kind === 'recover') continue
    for (const t of selectTargets(model.tensors, step.targets)) {
      const params = method.parseParams(
        { ...step.params, ...overrideFor(t.name, recipe.overrides) },
        `recipe step ${i + 1} (${step.method}) for ${t.name}`,
      )
      const p = method.predict(params, t.shape[0], t.shape[1])
      last.set(t.name, {
        name: t.name,
        method: step.method,
        format: p.format,
        bitsPerWeight: p.bitsPerWeight,
        params: t.shape[0] * t.shape[1],
      })
    }
  }
  const totals = storageTotals(model, last)
  return {
    bitsPerWeight: totals.bitsPerWeight,
    bytesBefore: totals.bytesBefore,
    bytesAfter: totals.bytesAfter,
    tensors: [...last.values()].map(({ params: _p, ...t }) => t),
  }
}
