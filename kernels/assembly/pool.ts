// pool_absmax: ACCUMULATES max |x| of a chunk of rows onto a coarse grid (the heatmap).
// Twin: kernels/reference/pool.ts. Global row R -> grid row floor(R * gridRows / totalRows), column c ->
// grid column floor(c * gridCols / cols), in i64 so the products cannot overflow. Non-finite values
// count as 0. Max does not depend on order (all candidates are >= +0), so this matches the twin exactly
// although it visits the cells in a different order: rows with the same grid row are handled together,
// one grid column (a run of columns) at a time, which keeps the integer divisions per cell, not per value.

// @ts-ignore: decorator
@inline function runAbsmax(row: usize, start: i32, end: i32): f32 {
  const inf = f32x4.splat(<f32>Infinity)
  let absV = f32x4.splat(0)
  let c = start
  for (; c + 4 <= end; c += 4) {
    const a = f32x4.abs(v128.load(row + (<usize>c << 2)))
    absV = f32x4.pmax(absV, v128.and(a, f32x4.lt(a, inf))) // exact here: no NaN, no -0
  }
  let m = max(max(f32x4.extract_lane(absV, 0), f32x4.extract_lane(absV, 1)), max(f32x4.extract_lane(absV, 2), f32x4.extract_lane(absV, 3)))
  for (; c < end; c++) {
    const a = abs<f32>(load<f32>(row + (<usize>c << 2)))
    if (a < <f32>Infinity) m = max(m, a)
  }
  return m
}

/** First column c with floor(c * gridCols / cols) >= cell, i.e. ceil(cell * cols / gridCols). */
// @ts-ignore: decorator
@inline function firstColumn(cell: i32, cols: i32, gridCols: i32): i32 {
  return <i32>((<i64>cell * <i64>cols + <i64>gridCols - 1) / <i64>gridCols)
}

export function pool_absmax(
  ptr: usize, chunkRows: i32, cols: i32, rowOffset: i32, totalRows: i32,
  gridRows: i32, gridCols: i32, out: usize,
): void {
  if (chunkRows <= 0 || cols <= 0 || totalRows <= 0 || gridRows <= 0 || gridCols <= 0 || rowOffset < 0) return
  // Rows at or past totalRows would map outside the grid: stop before them.
  const rows = <i32>min<i64>(<i64>chunkRows, <i64>totalRows - <i64>rowOffset)
  let r = 0
  while (r < rows) {
    const cellRow = <i32>(((<i64>rowOffset + <i64>r) * <i64>gridRows) / <i64>totalRows)
    // The run of chunk rows that share this grid row.
    let rowEnd = r + 1
    while (rowEnd < rows && <i32>(((<i64>rowOffset + <i64>rowEnd) * <i64>gridRows) / <i64>totalRows) == cellRow) rowEnd++
    const cells = out + ((<usize>cellRow * <usize>gridCols) << 2)
    let start = 0
    for (let cell = 0; cell < gridCols; cell++) {
      const end = firstColumn(cell + 1, cols, gridCols)
      if (end > start) {
        let m: f32 = 0
        for (let rr = r; rr < rowEnd; rr++) m = max(m, runAbsmax(ptr + ((<usize>rr * <usize>cols) << 2), start, end))
        const at = cells + (<usize>cell << 2)
        store<f32>(at, max(load<f32>(at), m))
      }
      start = end
    }
    r = rowEnd
  }
}
