// Reference twin of kernels/assembly/channels.ts: per-row and per-column absmax and sum of squares of a
// row-major [rows, cols] f32 matrix. Non-finite values are ignored (they add +0 and never raise absmax).
//
// Order (shared with the kernel, bit-exact):
//   row sums use the moments lane scheme: column c goes to lane c % 4, lanes combined as
//   (lane0 + lane2) + (lane1 + lane3); squares are f64(x) * f64(x), which is exact.
//   column sums add rows in order, one addition per row, into the caller's running values.

function check(
  what: string,
  src: Float32Array,
  rows: number,
  cols: number,
  outLength: number,
  absmax: Float32Array,
  sumsq: Float64Array,
): void {
  if (src.length < rows * cols)
    throw new RangeError(`${what}: ${rows}x${cols} needs ${rows * cols} values, the source has ${src.length}`)
  if (absmax.length < outLength || sumsq.length < outLength)
    throw new RangeError(`${what}: outputs must hold ${outLength} values`)
}

/** Writes absmax (f32) and Σx² (f64) of each row. */
export function rowAbsmaxSumsq(
  src: Float32Array,
  rows: number,
  cols: number,
  outAbsmax: Float32Array,
  outSumsq: Float64Array,
): void {
  if (rows <= 0 || cols <= 0) return
  check('rowAbsmaxSumsq', src, rows, cols, rows, outAbsmax, outSumsq)
  for (let r = 0; r < rows; r++) {
    const base = r * cols
    let absmax = 0
    const lanes = [0, 0, 0, 0]
    for (let c = 0; c < cols; c++) {
      const x = src[base + c]
      const finite = x - x === 0
      if (finite) absmax = Math.max(absmax, Math.abs(x))
      lanes[c & 3] += finite ? x * x : 0
    }
    outAbsmax[r] = absmax
    outSumsq[r] = lanes[0] + lanes[2] + (lanes[1] + lanes[3])
  }
}

/** ACCUMULATES column absmax (max with the existing value) and Σx² (added to the existing value). */
export function colAbsmaxSumsq(
  src: Float32Array,
  rows: number,
  cols: number,
  outAbsmax: Float32Array,
  outSumsq: Float64Array,
): void {
  if (rows <= 0 || cols <= 0) return
  check('colAbsmaxSumsq', src, rows, cols, cols, outAbsmax, outSumsq)
  for (let r = 0; r < rows; r++) {
    const base = r * cols
    for (let c = 0; c < cols; c++) {
      const x = src[base + c]
      const finite = x - x === 0
      outAbsmax[c] = Math.max(outAbsmax[c], finite ? Math.abs(x) : 0)
      outSumsq[c] += finite ? x * x : 0
    }
  }
}

/**
 * ACCUMULATES per-column calibration statistics of src [rows, cols], rows in order: absmax (raised only by
 * a larger |x|, so NaN never enters), Σ|x| and Σx² (one f64 addition per row each). Non-finite values go
 * in as they are. Twin of col_input_stats, and the JS path of calibration's accumulateInput.
 */
export function colInputStats(
  src: Float32Array,
  rows: number,
  cols: number,
  outAbsmax: Float32Array,
  outSumAbs: Float64Array,
  outSumSq: Float64Array,
): void {
  if (rows <= 0 || cols <= 0) return
  check('colInputStats', src, rows, cols, cols, outAbsmax, outSumSq)
  if (outSumAbs.length < cols) throw new RangeError(`colInputStats: outputs must hold ${cols} values`)
  for (let r = 0; r < rows; r++) {
    const base = r * cols
    for (let c = 0; c < cols; c++) {
      const x = src[base + c]
      const a = Math.abs(x)
      if (a > outAbsmax[c]) outAbsmax[c] = a
      outSumAbs[c] += a
      outSumSq[c] += x * x
    }
  }
}
