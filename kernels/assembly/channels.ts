// Per-row and per-column absmax and sum of squares of a row-major [rows, cols] f32 matrix.
// Twin: kernels/reference/channels.ts (bit-exact). Non-finite values count as 0.

// @ts-ignore: decorator
@inline function maxLane(v: v128): f32 {
  return max(max(f32x4.extract_lane(v, 0), f32x4.extract_lane(v, 1)), max(f32x4.extract_lane(v, 2), f32x4.extract_lane(v, 3)))
}

/** WRITES outAbsmax[r] (f32) and outSumsq[r] (f64, lane order as in moments) for every row. */
export function row_absmax_sumsq(ptr: usize, rows: i32, cols: i32, outAbsmax: usize, outSumsq: usize): void {
  if (rows <= 0 || cols <= 0) return
  const inf = f32x4.splat(<f32>Infinity)
  const cols4 = cols & ~3
  for (let r = 0; r < rows; r++) {
    const row = ptr + ((<usize>r * <usize>cols) << 2)
    let absV = f32x4.splat(0)
    let sumA = f64x2.splat(0)
    let sumB = f64x2.splat(0)
    let c = 0
    for (; c < cols4; c += 4) {
      const v = v128.load(row + (<usize>c << 2))
      const a = f32x4.abs(v)
      const finite = f32x4.lt(a, inf)
      absV = f32x4.pmax(absV, v128.and(a, finite)) // pmax is exact here: no NaN, no -0
      const x = v128.and(v, finite)
      const xA = f64x2.promote_low_f32x4(x)
      const xB = f64x2.promote_low_f32x4(i32x4.shuffle(x, x, 2, 3, 2, 3))
      sumA = f64x2.add(sumA, f64x2.mul(xA, xA))
      sumB = f64x2.add(sumB, f64x2.mul(xB, xB))
    }
    let absmax = maxLane(absV)
    let s0 = f64x2.extract_lane(sumA, 0)
    let s1 = f64x2.extract_lane(sumA, 1)
    let s2 = f64x2.extract_lane(sumB, 0)
    for (; c < cols; c++) {
      const x = load<f32>(row + (<usize>c << 2))
      if (!(abs<f32>(x) < <f32>Infinity)) continue
      absmax = max(absmax, abs<f32>(x))
      const square = <f64>x * <f64>x
      const lane = c - cols4
      if (lane == 0) s0 += square
      else if (lane == 1) s1 += square
      else s2 += square
    }
    const s3 = f64x2.extract_lane(sumB, 1)
    store<f32>(outAbsmax + (<usize>r << 2), absmax)
    store<f64>(outSumsq + (<usize>r << 3), (s0 + s2) + (s1 + s3))
  }
}

/** ACCUMULATES into outAbsmax[c] (max) and outSumsq[c] (+=), rows in order, so row chunks can stream. */
export function col_absmax_sumsq(ptr: usize, rows: i32, cols: i32, outAbsmax: usize, outSumsq: usize): void {
  if (rows <= 0 || cols <= 0) return
  const inf = f32x4.splat(<f32>Infinity)
  const cols4 = cols & ~3
  for (let r = 0; r < rows; r++) {
    const row = ptr + ((<usize>r * <usize>cols) << 2)
    let c = 0
    for (; c < cols4; c += 4) {
      const v = v128.load(row + (<usize>c << 2))
      const a = f32x4.abs(v)
      const finite = f32x4.lt(a, inf)
      const absAt = outAbsmax + (<usize>c << 2)
      v128.store(absAt, f32x4.max(v128.load(absAt), v128.and(a, finite)))
      const x = v128.and(v, finite)
      const xA = f64x2.promote_low_f32x4(x)
      const xB = f64x2.promote_low_f32x4(i32x4.shuffle(x, x, 2, 3, 2, 3))
      const sumAt = outSumsq + (<usize>c << 3)
      v128.store(sumAt, f64x2.add(v128.load(sumAt), f64x2.mul(xA, xA)))
      v128.store(sumAt, f64x2.add(v128.load(sumAt, 16), f64x2.mul(xB, xB)), 16)
    }
    for (; c < cols; c++) {
      const x = load<f32>(row + (<usize>c << 2))
      const finite = abs<f32>(x) < <f32>Infinity
      const absAt = outAbsmax + (<usize>c << 2)
      const sumAt = outSumsq + (<usize>c << 3)
      store<f32>(absAt, max(load<f32>(absAt), finite ? abs<f32>(x) : 0))
      store<f64>(sumAt, load<f64>(sumAt) + (finite ? <f64>x * <f64>x : 0))
    }
  }
}

/**
 * ACCUMULATES the calibration statistics of x [rows, cols] per column, rows in order: absmax (f32; raised
 * only by a larger |x|, so NaN never enters), Σ|x| and Σx² (f64, one addition per row). Unlike
 * col_absmax_sumsq, non-finite values go in as they are: calibration reports them rather than hiding them.
 */
export function col_input_stats(ptr: usize, rows: i32, cols: i32, outAbsmax: usize, outSumAbs: usize, outSumSq: usize): void {
  if (rows <= 0 || cols <= 0) return
  const cols4 = cols & ~3
  for (let r = 0; r < rows; r++) {
    const row = ptr + ((<usize>r * <usize>cols) << 2)
    let c = 0
    for (; c < cols4; c += 4) {
      const v = v128.load(row + (<usize>c << 2))
      const a = f32x4.abs(v)
      const absAt = outAbsmax + (<usize>c << 2)
      // pmax(m, a) = m < a ? a : m: the running max's own rule, NaN-proof.
      v128.store(absAt, f32x4.pmax(v128.load(absAt), a))
      const aLo = f64x2.promote_low_f32x4(a), aHi = f64x2.promote_low_f32x4(i32x4.shuffle(a, a, 2, 3, 2, 3))
      const xLo = f64x2.promote_low_f32x4(v), xHi = f64x2.promote_low_f32x4(i32x4.shuffle(v, v, 2, 3, 2, 3))
      const absSum = outSumAbs + (<usize>c << 3), sqSum = outSumSq + (<usize>c << 3)
      v128.store(absSum, f64x2.add(v128.load(absSum), aLo))
      v128.store(absSum, f64x2.add(v128.load(absSum, 16), aHi), 16)
      v128.store(sqSum, f64x2.add(v128.load(sqSum), f64x2.mul(xLo, xLo)))
      v128.store(sqSum, f64x2.add(v128.load(sqSum, 16), f64x2.mul(xHi, xHi)), 16)
    }
    for (; c < cols; c++) {
      const x = load<f32>(row + (<usize>c << 2))
      const a = abs<f32>(x)
      const absAt = outAbsmax + (<usize>c << 2)
      if (a > load<f32>(absAt)) store<f32>(absAt, a)
      const absSum = outSumAbs + (<usize>c << 3), sqSum = outSumSq + (<usize>c << 3)
      store<f64>(absSum, load<f64>(absSum) + <f64>a)
      store<f64>(sqSum, load<f64>(sqSum) + <f64>x * <f64>x)
    }
  }
}
