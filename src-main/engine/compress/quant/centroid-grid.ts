// The learned grid of a lookup-table quantizer (SqueezeLLM, GOBO) as the report and the UI get it
// (contract/api.ts, LearnedGrid 'centroids'): a few rows' tables, not all of them, so it crosses the
// bridge cheaply.

import type { LearnedGrid } from '../../../contract/api'

/** Rows whose tables the grid shows at most. */
export const GRID_SAMPLE_ROWS = 8

/** Up to GRID_SAMPLE_ROWS row indices spread evenly over [0, rows), ascending, first row included. */
export function sampleRows(rows: number): number[] {
  const n = Math.min(GRID_SAMPLE_ROWS, rows)
  const out: number[] = []
  for (let i = 0; i < n; i++) out.push(Math.floor((i * rows) / n))
  return out
}

/** The grid of per-row tables `lut` [rows, k] (SqueezeLLM), with the fraction kept in full precision. */
export function perRowCentroidGrid(lut: Float32Array, rows: number, k: number, outlierFraction: number): LearnedGrid {
  return {
    kind: 'centroids',
    rows: sampleRows(rows).map((row) => ({ row, centroids: Array.from(lut.subarray(row * k, (row + 1) * k)) })),
    outlierFraction,
  }
}

/** The grid of one table for the whole tensor (GOBO): a single entry with row −1, meaning every row. */
export function tensorCentroidGrid(centroids: Float32Array, outlierFraction: number): LearnedGrid {
  return { kind: 'centroids', rows: [{ row: -1, centroids: Array.from(centroids) }], outlierFraction }
}
