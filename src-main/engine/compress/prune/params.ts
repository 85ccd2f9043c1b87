// The parameters every pruner shares: a sparsity in [0, 1) or an N:M pattern (which implies its own).

import { numberParam, stringParam, type ParamSpec } from '../../../contract/method-params'
import type { ParamReader } from '../methods/params'
import { parsePattern, type NmPattern } from './select'

export interface PruneParams {
  /** Fraction of weights to zero (for a pattern: 1 − N/M). */
  sparsity: number
  pattern: NmPattern | null
}

/** sparsity and pattern, for every pruner's spec. */
export const PRUNE_PARAM_SPECS: readonly ParamSpec[] = [
  numberParam('sparsity', 0.5, 0, 0.999, 'Fraction of weights set to zero (implied by a pattern)', 0.05),
  stringParam(
    'pattern',
    'Keep N of every M consecutive inputs, "N:M" (implies the sparsity); "unstructured" for none',
    ['unstructured', '2:4', '4:8'],
    'unstructured',
  ),
]

export function parsePrune(r: ParamReader, where: string): PruneParams {
  const text = r.optString('pattern')
  const pattern =
    text === undefined || text === '' || text === 'unstructured' ? null : parsePattern(text, `${where}: params.pattern`)
  if (pattern) {
    const implied = 1 - pattern.n / pattern.m
    const sparsity = r.num('sparsity', implied)
    if (Math.abs(sparsity - implied) > 1e-9)
      r.fail('sparsity', `is ${sparsity}, but pattern ${pattern.n}:${pattern.m} prunes ${implied}; give one of them`)
    return { sparsity: implied, pattern }
  }
  return { sparsity: r.num('sparsity'), pattern: null }
}
