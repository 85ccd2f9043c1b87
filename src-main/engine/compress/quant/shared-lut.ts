// One lookup table for a run of consecutive output rows (SqueezeLLM with `lut_rows` > 1), fitted by
// sensitivity-weighted 1-D k-means (kmeans.ts) over the rows' dense weights.
// - Plain: the rows' weights are pooled as they are; every row decodes to the same 2^bits values.
// - Row-scaled: each row r keeps an fp16 scale s_r and the table holds normalized centroids c_j; row r
//   decodes to f16(s_r · c_j). Rows of one Linear differ in range, which a single unscaled table cannot
//   follow. The fit minimises Σ f·(w − s_r·c)² = Σ f·s_r²·(w/s_r − c)²: k-means on w/s_r weighted by
//   f·s_r², from s_r = max|w| of the row's dense weights, then SCALE_ROUNDS rounds of searching each
//   s_r for the least weighted error (searchScale) and refitting the table from where it stood.
// Tables are stored as GPTVQ stores codebooks (vq-codebook.ts: fp16, or int8 with one fp16 scale);
// every value returned is the stored one.

import { roundToF16 } from '../../numerics/float-encodings'
import { nearestCentroid, weightedKMeans1D } from './kmeans'
import { storeCodebook, type CodebookDtype } from './vq-codebook'

/** Alternations of row-scale search and table refit after the first fit. */
const SCALE_ROUNDS = 4
/** Candidate scales per search: s·(0.5 + 0.8·m / SCALE_STEPS) for m = 0..SCALE_STEPS. */
const SCALE_STEPS = 40

export interface SharedTable {
  /** k stored centroids, ascending (normalized when `scales` is set). */
  table: Float32Array
  /** Per row of the run, its fp16 scale; null for a plain table. */
  scales: Float32Array | null
}

/** The rows [first, end) of W [·, cols], with `dense[i]` false for weights kept out of the fit. */
export interface RowRun {
  W: Float32Array
  cols: number
  first: number
  end: number
  dense: (i: number) => boolean
  sensitivity: ArrayLike<number>
}

/**
 * The stored form of fitted centroids, ascending, as fp16 values (an int8 code times its scale rounded to
 * fp16, as the authors' fp16 tables hold it). fp16 rounds from f64 directly (one rounding, not two); + 0
 * turns a −0 into +0, so a weight and its table entry compare as the same number.
 */
function stored(fitted: Float64Array, dtype: CodebookDtype): Float32Array {
  const table = Float32Array.from(fitted)
  if (dtype === 'f16') table.set(Array.from(fitted, roundToF16))
  else storeCodebook(table, dtype)
  return Float32Array.from(table, (v) => roundToF16(v) + 0).sort()
}

/** Fits the run's table (a table of zeros where no dense weight is left). */
export function fitSharedTable(run: RowRun, k: number, dtype: CodebookDtype, rowScaled: boolean): SharedTable {
  const { W, cols, first, end, dense, sensitivity } = run
  if (!rowScaled) {
    const values: number[] = [],
      weights: number[] = []
    for (let i = first * cols; i < end * cols; i++)
      if (dense(i)) {
        values.push(W[i])
        weights.push(sensitivity[i])
      }
    const fitted = values.length ? weightedKMeans1D(values, weights, k).centroids : new Float64Array(k)
    return { table: stored(fitted, dtype), scales: null }
  }
  const rows = end - first
  const scales = new Float32Array(rows)
  for (let r = 0; r < rows; r++) {
    let m = 0
    for (let i = (first + r) * cols; i < (first + r + 1) * cols; i++) if (dense(i)) m = Math.max(m, Math.abs(W[i]))
    scales[r] = roundToF16(m)
  }
  const fit = (init?: Float32Array): Float32Array => {
    const values: number[] = [],
      weights: number[] = []
    for (let r = 0; r < rows; r++) {
      const s = scales[r]
      if (s === 0) continue // nothing dense, or all zero: decodes to 0 whatever the table
      for (let i = (first + r) * cols; i < (first + r + 1) * cols; i++)
        if (dense(i)) {
          values.push(W[i] / s)
          weights.push(sensitivity[i] * s * s)
        }
    }
    if (!values.length) return new Float32Array(k)
    return stored(weightedKMeans1D(values, weights, k, init ? { init } : {}).centroids, dtype)
  }
  let table = fit()
  for (let round = 0; round < SCALE_ROUNDS; round++) {
    for (let r = 0; r < rows; r++) if (scales[r] > 0) scales[r] = searchScale(run, first + r, scales[r], table)
    table = fit(table)
  }
  return { table, scales }
}

/** Σ f·(w − f16(s·c))² over row r's dense weights, each coded to its nearest entry of s·table. */
function rowError(run: RowRun, r: number, s: number, table: Float32Array): number {
  const { W, cols, dense, sensitivity } = run
  let e = 0
  for (let i = r * cols; i < (r + 1) * cols; i++) {
    if (!dense(i)) continue
    const d = W[i] - roundToF16(s * table[nearestCentroid(table, W[i] / s)])
    e += sensitivity[i] * d * d
  }
  return e
}

/**
 * Row r's fp16 scale with the least weighted error among s and SCALE_STEPS + 1 candidates from 0.5·s to
 * 1.3·s (a search, as RTN-style clip searches do: the error is not smooth in s, so least squares on the
 * current codes settles in poorer minima; measured on stories260K, 2026-12-03, ppl 8.98 → 8.81).
 */
function searchScale(run: RowRun, r: number, s: number, table: Float32Array): number {
  let best = s,
    bestError = rowError(run, r, s, table)
  for (let m = 0; m <= SCALE_STEPS; m++) {
    const candidate = roundToF16(s * (0.5 + (0.8 * m) / SCALE_STEPS))
    if (!(candidate > 0) || !Number.isFinite(candidate)) continue
    const e = rowError(run, r, candidate, table)
    if (e < bestError) {
      bestError = e
      best = candidate
    }
  }
  return best
}

/** Row r's decoded table: the stored one, or f16(s_r · c_j) when row-scaled (ascending, as s_r > 0). */
export function rowTable(t: SharedTable, r: number): Float32Array {
  if (!t.scales) return t.table
  const s = t.scales[r]
  return Float32Array.from(t.table, (c) => roundToF16(s * c) + 0)
}
