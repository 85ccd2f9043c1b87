// The Compare view's arithmetic: which results can share a chart (same eval text, seqlen and windows),
// the Pareto frontier of size against perplexity, and the per-tensor side-by-side of two results.

import type { ResultPoint } from '@contract/api'

/** Perplexities are comparable only within one evaluation setting. */
export function evalSetting(p: ResultPoint): string {
  return `${p.evalText ?? '—'} · seqlen ${p.seqlen} · ${p.maxEvalWindows === null ? 'all windows' : `${p.maxEvalWindows} windows`}`
}

/** Settings present, the most used first (the one a chart should open on). */
export function evalSettings(points: readonly ResultPoint[]): { key: string; count: number }[] {
  const counts = new Map<string, number>()
  for (const p of points) counts.set(evalSetting(p), (counts.get(evalSetting(p)) ?? 0) + 1)
  return [...counts]
    .map(([key, count]) => ({ key, count }))
    .sort((a, b) => b.count - a.count || a.key.localeCompare(b.key))
}

export type SizeAxis = 'bitsPerWeight' | 'bytesAfter'

/** A point's position: x = size (bits per compressed weight, or compact bytes), y = perplexity after. */
export function coordinates(p: ResultPoint, axis: SizeAxis): [number, number] | null {
  if (p.pplAfter === null || !Number.isFinite(p.pplAfter)) return null
  return [axis === 'bitsPerWeight' ? p.bitsPerWeight : p.bytesAfter, p.pplAfter]
}

/**
 * The points no other point beats on both size and perplexity (smaller or equal on both, strictly
 * smaller on one), ordered by size: the best perplexity each size can buy.
 */
export function paretoFrontier(points: readonly ResultPoint[], axis: SizeAxis): ResultPoint[] {
  const placed = points
    .map((p) => ({ p, c: coordinates(p, axis) }))
    .filter((e): e is { p: ResultPoint; c: [number, number] } => e.c !== null)
  placed.sort((a, b) => a.c[0] - b.c[0] || a.c[1] - b.c[1])
  const frontier: ResultPoint[] = []
  let best = Infinity
  for (const { p, c } of placed) {
    if (c[1] < best) {
      frontier.push(p)
      best = c[1]
    }
  }
  return frontier
}

export interface TensorComparison {
  name: string
  a: number | null
  b: number | null
  /** b − a, when both exist. */
  diff: number | null
}

/** Per-tensor relative output error (weight error where no calibration ran) of two results, by name. */
export function compareTensors(a: ResultPoint, b: ResultPoint): TensorComparison[] {
  const err = (t: ResultPoint['tensors'][number]): number => t.relOutputError ?? t.relWeightError
  const byA = new Map(a.tensors.map((t) => [t.name, err(t)]))
  const byB = new Map(b.tensors.map((t) => [t.name, err(t)]))
  const names = [...new Set([...byA.keys(), ...byB.keys()])]
  return names.map((name) => {
    const x = byA.get(name) ?? null
    const y = byB.get(name) ?? null
    return { name, a: x, b: y, diff: x !== null && y !== null ? y - x : null }
  })
}
