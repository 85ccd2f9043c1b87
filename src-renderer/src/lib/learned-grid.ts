// What a non-uniform or vector quantizer learned for one tensor (contract LearnedGrid), made ready for the
// per-tensor pictures: which outcome of the run holds it, the uniform grid it is compared against (as many
// levels, the same ends), how far the sampled weights lie from each, and the one-line caption that says
// why a learned grid helps.

import type { CompressedTensor, LearnedGrid } from '@contract/api'
import { formatFraction, formatValue } from './format'

export type CentroidsGrid = Extract<LearnedGrid, { kind: 'centroids' }>
export type Codebook2dGrid = Extract<LearnedGrid, { kind: 'codebook2d' }>
export type SalientGrid = Extract<LearnedGrid, { kind: 'salient' }>

/** The last outcome of `name` in a run that learned a grid (a later step may have replaced it: then none). */
export function learnedGridOf(
  tensors: readonly CompressedTensor[],
  name: string,
): (CompressedTensor & { grid: LearnedGrid }) | null {
  let last: CompressedTensor | null = null
  for (const t of tensors) if (t.name === name) last = t
  return last?.grid ? (last as CompressedTensor & { grid: LearnedGrid }) : null
}

/** n evenly spaced levels from lo to hi, both ends included (one level: lo). */
export function uniformLevels(lo: number, hi: number, n: number): number[] {
  if (!Number.isInteger(n) || n < 1) return []
  if (n === 1) return [lo]
  return Array.from({ length: n }, (_, i) => (i === n - 1 ? hi : lo + ((hi - lo) * i) / (n - 1)))
}

/** The uniform grid a table of centroids is compared against: as many levels, between its extremes. */
export function uniformLike(centroids: readonly number[]): number[] {
  if (centroids.length === 0) return []
  return uniformLevels(Math.min(...centroids), Math.max(...centroids), centroids.length)
}

/**
 * Mean squared distance of values to their nearest level, each value weighted (e.g. a histogram bin's
 * centre by its count); NaN when there is no weight.
 */
export function nearestLevelError(
  values: readonly number[],
  weights: readonly number[],
  levels: readonly number[],
): number {
  let sum = 0,
    total = 0
  values.forEach((v, i) => {
    const w = weights[i] ?? 0
    if (w <= 0 || levels.length === 0) return
    let best = Infinity
    for (const l of levels) best = Math.min(best, (v - l) ** 2)
    sum += w * best
    total += w
  })
  return total > 0 ? sum / total : NaN
}

/** Mean squared distance of 2-D points to their nearest code; NaN without points or codes. */
export function nearestCodeError(points: readonly [number, number][], codes: readonly [number, number][]): number {
  if (points.length === 0 || codes.length === 0) return NaN
  let sum = 0
  for (const [x, y] of points) {
    let best = Infinity
    for (const [cx, cy] of codes) best = Math.min(best, (x - cx) ** 2 + (y - cy) ** 2)
    sum += best
  }
  return sum / points.length
}

/**
 * The uniform 2-D grid with as many points as the codebook: √K evenly spaced levels on each axis over the
 * sampled pairs' range (what two scalar quantizers of the same total bits would give). null when K is no
 * square, as a 2-D codebook of an odd number of bits per pair is.
 */
export function uniformProductGrid(points: readonly [number, number][], count: number): [number, number][] | null {
  const n = Math.round(Math.sqrt(count))
  if (n < 1 || n * n !== count || points.length === 0) return null
  const xs = uniformLevels(Math.min(...points.map((p) => p[0])), Math.max(...points.map((p) => p[0])), n)
  const ys = uniformLevels(Math.min(...points.map((p) => p[1])), Math.max(...points.map((p) => p[1])), n)
  return xs.flatMap((x) => ys.map((y): [number, number] => [x, y]))
}

/** Why this kind of learned grid helps, in one line under its picture. */
export function gridCaption(grid: LearnedGrid): string {
  switch (grid.kind) {
    case 'centroids':
      return (
        'Weights crowd near zero and thin out towards the tails: centroids learned by k-means sit where the weights ' +
        'are dense, so most weights land close to a level, while a uniform grid spends its levels evenly on the sparse ' +
        'tails (dashed: a uniform grid of as many levels between the same ends); the few outliers that would stretch ' +
        'the grid stay in full precision instead.'
      )
    case 'codebook2d':
      return (
        'Neighbouring weights are coded as pairs: a 2-D codebook puts its entries where the pairs actually cluster, ' +
        'which a square grid of two independent scalar quantizers with as many points (hollow) cannot do.'
      )
    case 'salient':
      return (
        'A few salient weights carry much of the output: keeping them at 8 bits (dark cells hold more of them) lets ' +
        'the rest be binarized to ±α per row at little cost, where binarizing everything destroys the layer.'
      )
  }
}

/** The picture's numbers in one line: table sizes, outliers, codebook size, salient share. */
export function gridSummary(grid: LearnedGrid): string {
  switch (grid.kind) {
    case 'centroids': {
      const sizes = [...new Set(grid.rows.map((r) => r.centroids.length))].join('/')
      const tables = isTensorTable(grid) ? 'one table for the whole tensor' : `${grid.rows.length} sampled rows' tables`
      return `${sizes} centroids · ${tables} · ${formatFraction(grid.outlierFraction)} of weights kept in full precision`
    }
    case 'codebook2d':
      return `${grid.centroids.length} codes in group ${grid.group}'s codebook · ${grid.points.length} sampled weight pairs`
    case 'salient':
      return `${formatFraction(grid.salientFraction)} of weights salient (8 bits) · ${grid.rows}×${grid.cols} cells`
  }
}

/**
 * The salient mask for the thumbnail, shaded relative to its densest cell (which is drawn darkest): at a
 * salient fraction of a few percent, absolute densities would all be near-white. `peak` is that cell's density.
 */
export function salientShade(grid: SalientGrid): { rows: number; cols: number; density: number[]; peak: number } {
  const peak = Math.max(0, ...grid.density)
  return {
    rows: grid.rows,
    cols: grid.cols,
    density: grid.density.map((d) => (peak > 0 ? d / peak : 0)),
    peak,
  }
}

/** "…: learned 1.2e-4, uniform 3.4e-4 (2.8× less)": how much closer the learned grid keeps the weights. */
export function errorComparison(learned: number, uniform: number, nearest: 'level' | 'code' = 'level'): string | null {
  if (!Number.isFinite(learned) || !Number.isFinite(uniform)) return null
  const ratio = learned > 0 ? ` (${(uniform / learned).toFixed(1)}× less)` : ''
  return `mean squared distance to the nearest ${nearest}: learned ${formatValue(learned, 3)}, uniform ${formatValue(uniform, 3)}${ratio}`
}

/** One table for every row (GOBO), which the grid marks as a single entry of row −1. */
export function isTensorTable(grid: CentroidsGrid): boolean {
  return grid.rows.length === 1 && grid.rows[0].row < 0
}

/** Labels of a centroid grid's tables, for the row picker: "row 17", or "whole tensor" for GOBO's one table. */
export function centroidRowLabels(grid: CentroidsGrid): string[] {
  return isTensorTable(grid) ? ['whole tensor'] : grid.rows.map((r) => `row ${r.row}`)
}
