// The Structure view's part of the one shared recipe: a single structural step (SliceGPT, Bonsai, heads,
// layers), found and replaced in place so that the steps around it (a quantization after it, say) stay.
// Which methods are structural is the engine catalogue's word (kind 'structure'), never a list here.

import type { RecipeDoc, ResultPoint } from '@contract/api'
import type { MethodCatalogue } from './recipe-edit'

export type RecipeStep = RecipeDoc['steps'][number]

/** The catalogue's structural methods, in catalogue order. */
export function structureMethods(catalogue: MethodCatalogue): string[] {
  return catalogue.filter((m) => m.kind === 'structure').map((m) => m.name)
}

/** The recipe's first structural step and its 1-based number, or null. */
export function structureStepOf(
  catalogue: MethodCatalogue,
  recipe: RecipeDoc,
): { step: RecipeStep; number: number } | null {
  const names = new Set(structureMethods(catalogue))
  const i = recipe.steps.findIndex((s) => names.has(s.method))
  return i < 0 ? null : { step: recipe.steps[i], number: i + 1 }
}

/** The recipe with its structural step replaced by `step` (or `step` put first when it has none). */
export function withStructureStep(catalogue: MethodCatalogue, recipe: RecipeDoc, step: RecipeStep): RecipeDoc {
  const found = structureStepOf(catalogue, recipe)
  const steps = [...recipe.steps]
  if (found) steps[found.number - 1] = step
  else steps.unshift(step)
  return { ...recipe, steps }
}

/** One structural method's results, ordered by parameter count: a sweep curve of perplexity against size. */
export interface StructureSeries {
  method: string
  points: ResultPoint[]
}

/**
 * Results whose recipe has a structural step, grouped by that step's method; points with no perplexity
 * after are left out (nothing to plot).
 */
export function structureSeries(catalogue: MethodCatalogue, points: readonly ResultPoint[]): StructureSeries[] {
  const byMethod = new Map<string, ResultPoint[]>()
  for (const p of points) {
    const found = structureStepOf(catalogue, p.recipe)
    if (!found || p.pplAfter === null || !Number.isFinite(p.pplAfter)) continue
    const list = byMethod.get(found.step.method) ?? []
    list.push(p)
    byMethod.set(found.step.method, list)
  }
  return [...byMethod.entries()].map(([method, list]) => ({
    method,
    points: [...list].sort((a, b) => a.paramsAfter - b.paramsAfter),
  }))
}
