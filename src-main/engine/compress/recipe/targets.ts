// Which tensors a recipe step compresses. Only Linear weights inside decoder blocks are eligible;
// embeddings, norms and lm_head stay as they are unless a later issue's method says otherwise.

import type { TensorInfo, TensorRole } from '../../../contract/api'
import type { RecipeTargets } from './recipe'

export const LINEAR_ROLES: ReadonlySet<TensorRole> = new Set([
  'q',
  'k',
  'v',
  'qkv',
  'o',
  'gate',
  'up',
  'down',
  'fc1',
  'fc2',
])

export function isBlockLinear(t: TensorInfo): boolean {
  return t.layer !== null && LINEAR_ROLES.has(t.role) && t.shape.length === 2 && t.name.endsWith('weight')
}

export function selectTargets(tensors: TensorInfo[], targets: RecipeTargets): TensorInfo[] {
  const include = targets.include.map((s) => new RegExp(s))
  const exclude = targets.exclude.map((s) => new RegExp(s))
  return tensors.filter(
    (t) =>
      isBlockLinear(t) &&
      (include.length === 0 || include.some((r) => r.test(t.name))) &&
      !exclude.some((r) => r.test(t.name)),
  )
}

/** The override entry for a tensor: keys match the module name (the tensor name without '.weight') as a suffix. */
export function overrideFor(name: string, overrides: Record<string, Record<string, unknown>>): Record<string, unknown> {
  const module = name.replace(/\.weight$/, '')
  let found: Record<string, unknown> = {}
  for (const [key, params] of Object.entries(overrides)) {
    if (module === key || module.endsWith(`.${key}`)) found = { ...found, ...params }
  }
  return found
}
