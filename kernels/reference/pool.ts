// Reference twin of kernels/assembly/pool.ts: max-pooling |x| of a row-major matrix onto a coarse grid,
// for the heatmap. A chunk holds rows rowOffset .. rowOffset + chunkRows - 1 of a totalRows x cols matrix;
// global row R goes to grid row floor(R * gridRows / totalRows), column c to floor(c * gridCols / cols)
// (exact integer arithmetic). Non-finite values count as 0, like the channel kernels; rows at or past totalRows are skipped.
// Max is order-independent here (all candidates are >= +0), so the kernel matches exactly.

/** floor(a * b / c) for non-negative integers, exact even where a * b passes 2^53. */
export function mulDivFloor(a: number, b: number, c: number): number {
  const product = a * b
  if (product <= Number.MAX_SAFE_INTEGER) {
    let q = Math.floor(product / c)
    // The division rounds; nudge q so that q * c <= product < (q + 1) * c holds exactly.
    if (q * c > product) q--
    else if ((q + 1) * c <= product) q++
    return q
  }
  return Number((BigInt(a) * BigInt(b)) / BigInt(c))
}

/** ACCUMULATES max |x| per grid cell into `out` (gridRows x gridCols, row-major). */
export function poolAbsmax(
  src: Float32Array,
  chunkRows: number,
  cols: number,
  rowOffset: number,
  totalRows: number,
  gridRows: number,
  gridCols: number,
  out: Float32Array,
): void {
  if (chunkRows <= 0 || cols <= 0 || totalRows <= 0 || gridRows <= 0 || gridCols <= 0 || rowOffset < 0) return
  if (src.length < chunkRows * cols)
    throw new RangeError(
      `poolAbsmax: ${chunkRows}x${cols} needs ${chunkRows * cols} values, the source has ${src.length}`,
    )
  if (out.length < gridRows * gridCols) throw new RangeError(`poolAbsmax: the grid needs ${gridRows * gridCols} cells`)
  for (let r = 0; r < chunkRows; r++) {
    const globalRow = rowOffset + r
    if (globalRow >= totalRows) break
    const cellRow = mulDivFloor(globalRow, gridRows, totalRows) * gridCols
    const base = r * cols
    for (let c = 0; c < cols; c++) {
      const x = src[base + c]
      const cell = cellRow + mulDivFloor(c, gridCols, cols)
      out[cell] = Math.max(out[cell], x - x === 0 ? Math.abs(x) : 0)
    }
  }
}
