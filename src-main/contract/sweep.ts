// A sweep is a recipe that names one parameter of one step and a list of values for it: run once per
// value, it draws the size-vs-perplexity curve users otherwise assemble by hand from separate runs.
//
//   steps: [{method: gptq, params: {group_size: 128}}]
//   sweep: {step: 1, param: bits, values: [2, 3, 4, 8]}
//
// The expansion is pure data over the recipe document, shared by the engine (CLI --sweep) and the UI.

import type { RecipeDoc, RecipeSweep, SweepValue } from './recipe-doc'

export type { RecipeSweep, SweepValue } from './recipe-doc'

/** The most points one sweep may ask for: each one is a whole compression run. */
export const MAX_SWEEP_POINTS = 64

/** Why a sweep is malformed, or null when it can be expanded over `steps` steps. */
export function sweepProblem(sweep: unknown, steps: number): string | null {
  if (typeof sweep !== 'object' || sweep === null || Array.isArray(sweep))
    return 'must be a mapping with step, param and values'
  const s = sweep as Record<string, unknown>
  for (const k of Object.keys(s)) if (k !== 'step' && k !== 'param' && k !== 'values') return `unknown field "${k}"`
  if (
    s.step !== undefined &&
    (typeof s.step !== 'number' || !Number.isInteger(s.step) || s.step < 1 || s.step > steps)
  ) {
    return `step must be a step number in [1, ${steps}] (got ${JSON.stringify(s.step)})`
  }
  if (typeof s.param !== 'string' || !/^[A-Za-z_][\w]*$/.test(s.param))
    return 'param must name one parameter of the step, e.g. bits or sparsity'
  if (!Array.isArray(s.values) || s.values.length === 0) return 'values must be a non-empty list'
  if (s.values.length > MAX_SWEEP_POINTS) return `values has ${s.values.length} entries; at most ${MAX_SWEEP_POINTS}`
  if (
    s.values.some(
      (v) => !(typeof v === 'number' && Number.isFinite(v)) && typeof v !== 'string' && typeof v !== 'boolean',
    )
  ) {
    return 'values must be numbers, strings or booleans'
  }
  return null
}

/** One recipe per value, without the sweep section, in the order given. */
export function expandSweep(recipe: RecipeDoc & { sweep: RecipeSweep }): { value: SweepValue; recipe: RecipeDoc }[] {
  const index = (recipe.sweep.step ?? 1) - 1
  const { sweep: _sweep, ...base } = recipe
  return recipe.sweep.values.map((value) => ({
    value,
    recipe: {
      ...base,
      steps: base.steps.map((s, i) =>
        i === index ? { ...s, params: { ...(s.params ?? {}), [recipe.sweep.param]: value } } : s,
      ),
    },
  }))
}
