// The Prune view's form as recipe data. A pruning step goes first in the recipe (later steps, e.g. a
// quantization, see the pruned weights); an existing pruning step is replaced, the other steps and the
// targets stay, so the Prune and Compress views edit one recipe.

import type { RecipeDoc } from '@contract/api'
import { PRUNE_METHODS } from './recipe-edit'

export type PruneMethod = 'magnitude' | 'wanda' | 'sparsegpt'

export interface PruneForm {
  method: PruneMethod
  /** 'unstructured' or an N:M pattern such as '2:4'. */
  pattern: string
  /** Percent, for unstructured. */
  sparsityPercent: number
  scope: 'layer' | 'row' | 'global'
  /** SparseGPT only: quantize the kept weights to 4 bits in the same pass. */
  joint4bit: boolean
  /** Append a GPTQ 4-bit g128 step after pruning (its cost is shown per step). */
  thenGptq: boolean
}

export const DEFAULT_PRUNE_FORM: PruneForm = { method: 'wanda', pattern: 'unstructured', sparsityPercent: 50, scope: 'layer', joint4bit: false, thenGptq: false }

export function pruneParams(f: PruneForm): Record<string, unknown> {
  const params: Record<string, unknown> = f.pattern === 'unstructured' ? { sparsity: Math.round(f.sparsityPercent * 10) / 1000 } : { pattern: f.pattern }
  if (f.method === 'magnitude' && f.pattern === 'unstructured') params.scope = f.scope
  if (f.method === 'sparsegpt' && f.joint4bit) Object.assign(params, { bits: 4, group_size: 128 })
  return params
}

export function withPruning(recipe: RecipeDoc, f: PruneForm): RecipeDoc {
  const at = recipe.steps.findIndex((s) => PRUNE_METHODS.includes(s.method))
  const old = at >= 0 ? recipe.steps[at] : null
  const step = { method: f.method, targets: old?.targets ?? { include: [], exclude: [] }, params: pruneParams(f) }
  const rest = recipe.steps.filter((s, i) => i !== at && !(f.thenGptq === false && s.method === 'gptq' && s.params?.preserve_zeros === true && i > at))
  const quant = f.thenGptq && !rest.some((s) => s.method === 'gptq') ? [{ method: 'gptq', targets: { include: [], exclude: [] }, params: { bits: 4, group_size: 128, preserve_zeros: true } }] : []
  const calibration = f.method === 'magnitude' && !f.thenGptq ? recipe.calibration : recipe.calibration ?? { samples: 128, seqlen: 256, seed: 0 }
  return { ...recipe, ...(calibration ? { calibration } : {}), steps: [step, ...rest, ...quant] }
}

/** The recipe's pruning step as a form, to show what the recipe holds when the view opens. */
export function formFromRecipe(recipe: RecipeDoc): PruneForm | null {
  const s = recipe.steps.find((x) => PRUNE_METHODS.includes(x.method))
  if (!s) return null
  const p = s.params ?? {}
  return {
    method: s.method as PruneMethod,
    pattern: typeof p.pattern === 'string' && p.pattern !== '' ? p.pattern : 'unstructured',
    sparsityPercent: typeof p.sparsity === 'number' ? p.sparsity * 100 : 50,
    scope: p.scope === 'row' || p.scope === 'global' ? p.scope : 'layer',
    joint4bit: s.method === 'sparsegpt' && p.bits !== undefined,
    thenGptq: recipe.steps.some((x) => x.method === 'gptq'),
  }
}
