// From the Compress form to the job the engine runs, and from its summary to what the result panels
// show: the perplexity change and the per-tensor table's order.

import type { CompressedTensor, JobSpec, ModelId, RecipeDoc } from '@contract/api'
import { DEFAULT_PPL_SEQLEN, intInRange, type NumberField } from './analysis-requests'
import { plainCopy } from './recipe-edit'

export interface CompressRunForm {
  /** Absolute path of the eval text; empty = the bundled one. */
  evalText: string
  seqlen: NumberField
  /** Empty = every window of the eval text. */
  maxEvalWindows: NumberField
}

const SEQLEN_RANGE: [number, number] = [2, 8192]
const MAX_WINDOWS_RANGE: [number, number] = [1, 1 << 24]

export function compressSpec(
  modelId: ModelId,
  recipe: RecipeDoc,
  form: CompressRunForm,
): Extract<JobSpec, { kind: 'compress' }> {
  const spec: Extract<JobSpec, { kind: 'compress' }> = {
    kind: 'compress',
    modelId,
    recipe: plainCopy(recipe),
    seqlen: intInRange(form.seqlen, SEQLEN_RANGE) ?? DEFAULT_PPL_SEQLEN,
  }
  const text = form.evalText.trim()
  if (text) spec.evalText = text
  const windows = intInRange(form.maxEvalWindows, MAX_WINDOWS_RANGE)
  if (windows !== null) spec.maxEvalWindows = windows
  return spec
}

export interface PplChange {
  before: number
  after: number
  /** after − before */
  delta: number
  /** delta / before */
  relative: number
}

/** The perplexity change, or null when either side was not measured. */
export function pplChange(before: number | null, after: number | null): PplChange | null {
  if (before === null || after === null || !Number.isFinite(before) || !Number.isFinite(after) || before <= 0)
    return null
  return { before, after, delta: after - before, relative: (after - before) / before }
}

/** "+0.1234 (+3.02%)", with an explicit sign both ways. */
export function formatPplChange(c: PplChange): string {
  const sign = (x: number): string => (x > 0 ? '+' : x < 0 ? '−' : '±')
  return `${sign(c.delta)}${Math.abs(c.delta).toFixed(4)} (${sign(c.relative)}${Math.abs(c.relative * 100).toFixed(2)}%)`
}

export type TensorSortKey = 'name' | 'method' | 'format' | 'bitsPerWeight' | 'relWeightError' | 'relOutputError'
export interface TensorSort {
  key: TensorSortKey
  descending: boolean
}

/** Numbers by value; a missing measure (null, NaN) last in either direction, so it never hides the worst. */
function compareValues(a: string | number | null, b: string | number | null, descending: boolean): number {
  const missing = (v: string | number | null): boolean => v === null || (typeof v === 'number' && Number.isNaN(v))
  if (missing(a) || missing(b)) return missing(a) === missing(b) ? 0 : missing(a) ? 1 : -1
  const order =
    typeof a === 'number' && typeof b === 'number' ? a - b : String(a).localeCompare(String(b), 'en', { numeric: true })
  return descending ? -order : order
}

/** The table's rows in the chosen order; ties keep the engine's order (layer by layer). */
export function sortTensors(tensors: readonly CompressedTensor[], sort: TensorSort): CompressedTensor[] {
  return tensors
    .map((t, i) => ({ t, i }))
    .sort((x, y) => compareValues(x.t[sort.key], y.t[sort.key], sort.descending) || x.i - y.i)
    .map(({ t }) => t)
}

/** A click on a header: the same column flips direction; a new one starts with the worst first for measures. */
export function nextSort(current: TensorSort, key: TensorSortKey): TensorSort {
  if (current.key === key) return { key, descending: !current.descending }
  const textual = key === 'name' || key === 'method' || key === 'format'
  return { key, descending: !textual }
}

/** A step's parameters in words (shared with the HTML report). */
export { describeParams } from '@contract/describe-params'
