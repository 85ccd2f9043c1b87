// The report's "most affected tensors": before/after value histograms on shared bin edges, for the
// tensors whose output (or, without calibration, weight) error was largest.

import type { TensorOutcome } from '../compress/pipeline-types'
import { readTensorF32 } from '../formats/read'
import type { LoadedModel } from '../model/loaded-model'
import type { HistogramPair } from './report-json'

/** The last outcome of each tensor, most affected first. */
export function mostAffected(tensors: TensorOutcome[], count: number): TensorOutcome[] {
  const last = new Map<string, TensorOutcome>()
  for (const t of tensors) last.set(t.name, t)
  const score = (t: TensorOutcome): number => t.relOutputError ?? t.relWeightError
  return [...last.values()].sort((a, b) => score(b) - score(a)).slice(0, count)
}

/** Counts of `values` in `bins` equal bins over [lo, hi] (the top edge belongs to the last bin). */
export function binCounts(values: Float32Array, lo: number, hi: number, bins: number): number[] {
  const counts = new Array<number>(bins).fill(0)
  const width = (hi - lo) / bins
  for (const v of values) {
    if (!(v >= lo && v <= hi)) continue
    counts[width > 0 ? Math.min(bins - 1, Math.floor((v - lo) / width)) : 0]++
  }
  return counts
}

function range(a: Float32Array, b: Float32Array): [number, number] {
  let lo = Infinity,
    hi = -Infinity
  for (const x of [a, b]) {
    for (const v of x) {
      if (v < lo) lo = v
      if (v > hi) hi = v
    }
  }
  return Number.isFinite(lo) ? [lo, hi] : [0, 0]
}

/**
 * Histogram pairs of the `count` most affected tensors present in both models (a structural step may
 * have renamed or removed some). One tensor's values are in memory at a time.
 */
export async function affectedHistograms(
  before: LoadedModel,
  after: LoadedModel,
  tensors: TensorOutcome[],
  count = 4,
  bins = 64,
): Promise<HistogramPair[]> {
  const have = (m: LoadedModel, name: string): boolean => m.tensors.some((t) => t.name === name)
  const pairs: HistogramPair[] = []
  for (const t of mostAffected(
    tensors.filter((x) => have(before, x.name) && have(after, x.name)),
    count,
  )) {
    const a = await readTensorF32(before.entry(t.name))
    const b = await readTensorF32(after.entry(t.name))
    const [lo, hi] = range(a, b)
    pairs.push({ name: t.name, lo, hi, before: binCounts(a, lo, hi, bins), after: binCounts(b, lo, hi, bins) })
  }
  return pairs
}
