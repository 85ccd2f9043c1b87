// The Prune view's form as recipe data. A pruning step goes first in the recipe (later steps, e.g. a
// quantization, see the pruned weights); an existing pruning step is replaced, the other steps and the
// targets stay, so the Prune and Compress views edit one recipe. Which methods prune, and which of them
// take a scope or joint quantization bits, comes from the engine's catalogue.

import type { RecipeDoc } from '@contract/api'
import { methodsOfKind, paramSpecsFor, type MethodCatalogue } from './recipe-edit'

export interface PruneForm {
  /** A method of kind 'prune' in the catalogue. */
  method: string
  /** 'unstructured' or an N:M pattern such as '2:4'. */
  pattern: string
  /** Percent, for unstructured. */
  sparsityPercent: number
  scope: 'layer' | 'row' | 'global'
  /** Pruners that take bits (SparseGPT): quantize the kept weights to 4 bits in the same pass. */
  joint4bit: boolean
  /** Append a GPTQ 4-bit g128 step after pruning (its cost is shown per step). */
  thenGptq: boolean
}

export const DEFAULT_PRUNE_FORM: PruneForm = {
  method: 'wanda',
  pattern: 'unstructured',
  sparsityPercent: 50,
  scope: 'layer',
  joint4bit: false,
  thenGptq: false,
}

/** Whether the pruning method declares a parameter (scope, bits), i.e. whether the form offers it. */
export function pruneTakes(catalogue: MethodCatalogue, method: string, param: string): boolean {
  return paramSpecsFor(catalogue, method).some((p) => p.name === param)
}

export function pruneParams(catalogue: MethodCatalogue, f: PruneForm): Record<string, unknown> {
  const params: Record<string, unknown> =
    f.pattern === 'unstructured' ? { sparsity: Math.round(f.sparsityPercent * 10) / 1000 } : { pattern: f.pattern }
  if (pruneTakes(catalogue, f.method, 'scope') && f.pattern === 'unstructured') params.scope = f.scope
  if (pruneTakes(catalogue, f.method, 'bits') && f.joint4bit) Object.assign(params, { bits: 4, group_size: 128 })
  return params
}

export function withPruning(catalogue: MethodCatalogue, recipe: RecipeDoc, f: PruneForm): RecipeDoc {
  const pruners = methodsOfKind(catalogue, 'prune')
  const at = recipe.steps.findIndex((s) => pruners.includes(s.method))
  const old = at >= 0 ? recipe.steps[at] : null
  const step = {
    method: f.method,
    targets: old?.targets ?? { include: [], exclude: [] },
    params: pruneParams(catalogue, f),
  }
  const rest = recipe.steps.filter(
    (s, i) => i !== at && !(f.thenGptq === false && s.method === 'gptq' && s.params?.preserve_zeros === true && i > at),
  )
  const quant =
    f.thenGptq && !rest.some((s) => s.method === 'gptq')
      ? [
          {
            method: 'gptq',
            targets: { include: [], exclude: [] },
            params: { bits: 4, group_size: 128, preserve_zeros: true },
          },
        ]
      : []
  const needsCalibration = f.thenGptq || (catalogue.find((m) => m.name === f.method)?.needsCalibration ?? true)
  const calibration = needsCalibration
    ? (recipe.calibration ?? { samples: 128, seqlen: 256, seed: 0 })
    : recipe.calibration
  return { ...recipe, ...(calibration ? { calibration } : {}), steps: [step, ...rest, ...quant] }
}

/** The recipe's pruning step as a form, to show what the recipe holds when the view opens. */
export function formFromRecipe(catalogue: MethodCatalogue, recipe: RecipeDoc): PruneForm | null {
  const pruners = methodsOfKind(catalogue, 'prune')
  const s = recipe.steps.find((x) => pruners.includes(x.method))
  if (!s) return null
  const p = s.params ?? {}
  return {
    method: s.method,
    pattern: typeof p.pattern === 'string' && p.pattern !== '' ? p.pattern : 'unstructured',
    sparsityPercent: typeof p.sparsity === 'number' ? p.sparsity * 100 : 50,
    scope: p.scope === 'row' || p.scope === 'global' ? p.scope : 'layer',
    joint4bit: p.bits !== undefined,
    thenGptq: recipe.steps.some((x) => x.method === 'gptq'),
  }
}
