// Size and bits per weight of a recipe's result, from the methods' storage formulas, before running it.

import type { CompressionPrediction } from '../../contract/api'
import type { LoadedModel } from '../model/loaded-model'
import { getMethod } from './methods'
import type { Recipe } from './recipe/recipe'
import { overrideFor, selectTargets } from './recipe/targets'

export function predictCompression(model: LoadedModel, recipe: Recipe): CompressionPrediction {
  const last = new Map<string, CompressionPrediction['tensors'][number] & { params: number }>()
  for (const [i, step] of recipe.steps.entries()) {
    const method = getMethod(step.method, `step ${i + 1}`)
    for (const t of selectTargets(model.tensors, step.targets)) {
      const params = method.parseParams({ ...step.params, ...overrideFor(t.name, recipe.overrides) }, `recipe step ${i + 1} (${step.method}) for ${t.name}`)
      const p = method.predict(params, t.shape[0], t.shape[1])
      last.set(t.name, { name: t.name, method: step.method, format: p.format, bitsPerWeight: p.bitsPerWeight, params: t.shape[0] * t.shape[1] })
    }
  }
  let bytesBefore = 0, bytesAfter = 0, bits = 0, params = 0
  for (const e of model.files.tensors) {
    bytesBefore += e.byteLength
    const p = last.get(e.name)
    if (!p) {
      bytesAfter += e.byteLength
      continue
    }
    bits += p.bitsPerWeight * p.params
    params += p.params
    bytesAfter += Math.ceil((p.bitsPerWeight * p.params) / 8)
  }
  return {
    bitsPerWeight: params ? bits / params : 0,
    bytesBefore,
    bytesAfter,
    tensors: [...last.values()].map(({ params: _p, ...t }) => t),
  }
}
