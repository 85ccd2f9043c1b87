// scan_rows: the whole-model scan's statistics of a chunk of whole rows, read straight from its raw
// F32, F16 or BF16 bytes in one kernel call: the moments (as `moments` gives them, per row, merged row by
// row), and optionally each row's absmax and Σx² (as `row_absmax_sumsq`) and the columns' running absmax
// and Σx² (as `col_absmax_sumsq`).
//
// Why fused: the separate kernels each make a full pass over the chunk's decoded f32 (decode, moments'
// two passes, rows, columns: five passes over 4 bytes an element). Here a row is decoded in registers
// and read twice while it sits in L1 (pass A: counts, range, Σx; pass B: central sums about the row's
// mean, Σx² and the columns); nothing is written but the results. About 2.4x the separate kernels' speed.
//
// Most rows hold only finite values; for them pass A skips every finiteness mask and finds absmax and
// whether anything is non-finite with one integer max of |x|'s bits (Inf and NaN bits are larger than
// every finite one), and the columns are only touched in pass B, once the row is known to be finite. A
// row holding an Inf or NaN is redone on the careful path, which masks like `moments`; both give the
// same bits.
//
// Twin: kernels/reference/scan.ts, bit-exact. Per row, the moments are bit-identical with the `moments`
// kernel over that row (same lanes, same order); the rows are then merged in order with mergeMoments'
// formula (Chan/Pébay), written out here with the twin's operation order. So a chunk's moments differ from
// `moments` over the whole chunk only by rounding (the central sums are taken about each row's mean).

import { f16x4ToF32, f16ToF32Scalar } from './convert'

/** Element encodings of the `dtype` argument; must match SCAN_DTYPE in kernels/reference/scan.ts. */
const DT_F32 = 0
const DT_F16 = 1
const DT_BF16 = 2

// Indices into the moments output (f64[11]); must match MOMENT_* in kernels/reference/stats.ts.
const COUNT = 0
const NAN = 1
const INF = 2
const ZERO = 3
const MIN = 4
const MAX = 5
const ABSMAX = 6
const MEAN = 7
const M2 = 8
const M3 = 9
const M4 = 10

// @ts-ignore: decorator
@inline function load4(p: usize, dtype: i32): v128 {
  if (dtype == DT_F32) return v128.load(p)
  const h = i32x4.extend_low_i16x8_u(v128.load64_zero(p))
  if (dtype == DT_BF16) return i32x4.shl(h, 16) // bf16 is the top half of an f32
  return f16x4ToF32(h)
}

// @ts-ignore: decorator
@inline function load1(p: usize, dtype: i32): f32 {
  if (dtype == DT_F32) return load<f32>(p)
  const h = <u32>load<u16>(p)
  if (dtype == DT_BF16) return reinterpret<f32>(h << 16)
  return f16ToF32Scalar(h)
}

// @ts-ignore: decorator
@inline function laneSum(v: v128): i32 {
  return (i32x4.extract_lane(v, 0) + i32x4.extract_lane(v, 1)) + (i32x4.extract_lane(v, 2) + i32x4.extract_lane(v, 3))
}

/**
 * WRITES out (f64[11], the moments layout of kernels/reference/stats.ts) and, when `channels` is non-zero,
 * rowAbsmax[r] (f32) and rowSumsq[r] (f64) for every row; ACCUMULATES colAbsmax[c] (max) and colSumsq[c]
 * (+=, rows in order). `src` holds rows × cols elements of `dtype` (0 F32, 1 F16, 2 BF16), row-major.
 * With channels = 0 the row and column pointers are not touched.
 */
export function scan_rows(
  src: usize,
  dtype: i32,
  rows: i32,
  cols: i32,
  channels: i32,
  out: usize,
  rowAbsmax: usize,
  rowSumsq: usize,
  colAbsmax: usize,
  colSumsq: usize,
): void {
  // One copy of the loops per dtype, each with its decode folded in.
  if (dtype == DT_BF16) scanRowsOf(src, DT_BF16, 1, rows, cols, channels, out, rowAbsmax, rowSumsq, colAbsmax, colSumsq)
  else if (dtype == DT_F16) scanRowsOf(src, DT_F16, 1, rows, cols, channels, out, rowAbsmax, rowSumsq, colAbsmax, colSumsq)
  else scanRowsOf(src, DT_F32, 2, rows, cols, channels, out, rowAbsmax, rowSumsq, colAbsmax, colSumsq)
}

// @ts-ignore: decorator
@inline function scanRowsOf(
  src: usize,
  dtype: i32,
  elementShift: i32,
  rows: i32,
  cols: i32,
  channels: i32,
  out: usize,
  rowAbsmax: usize,
  rowSumsq: usize,
  colAbsmax: usize,
  colSumsq: usize,
): void {
  // The running merge of the rows so far (emptyMoments() at the start). Each row's own moments pass
  // through `out`, which is only written with the total at the end.
  let accCount: f64 = 0, accNan: f64 = 0, accInf: f64 = 0, accZero: f64 = 0
  let accMin: f64 = Infinity, accMax: f64 = -Infinity, accAbsmax: f64 = 0
  let accMean: f64 = 0, accM2: f64 = 0, accM3: f64 = 0, accM4: f64 = 0
  for (let r = 0; r < (cols > 0 ? rows : 0); r++) {
    const row = src + ((<usize>r * <usize>cols) << elementShift)
    let sumsq = scanRowFinite(row, dtype, elementShift, cols, channels, colAbsmax, colSumsq, out)
    if (sumsq < 0) sumsq = scanRowCareful(row, dtype, elementShift, cols, channels, colAbsmax, colSumsq, out)
    if (channels) {
      store<f32>(rowAbsmax + (<usize>r << 2), <f32>load<f64>(out + (<usize>ABSMAX << 3)))
      store<f64>(rowSumsq + (<usize>r << 3), sumsq)
    }

    // Merge this row into the running moments: mergeMoments(acc, row), in the twin's operation order.
    const nb = load<f64>(out + (<usize>COUNT << 3))
    const mean = load<f64>(out + (<usize>MEAN << 3))
    const rowM2 = load<f64>(out + (<usize>M2 << 3))
    const rowM3 = load<f64>(out + (<usize>M3 << 3))
    const rowM4 = load<f64>(out + (<usize>M4 << 3))
    const na = accCount
    const n = na + nb
    accNan = accNan + load<f64>(out + (<usize>NAN << 3))
    accInf = accInf + load<f64>(out + (<usize>INF << 3))
    accZero = accZero + load<f64>(out + (<usize>ZERO << 3))
    accMin = min(accMin, load<f64>(out + (<usize>MIN << 3)))
    accMax = max(accMax, load<f64>(out + (<usize>MAX << 3)))
    accAbsmax = max(accAbsmax, load<f64>(out + (<usize>ABSMAX << 3)))
    accCount = n
    if (nb == 0 || na == 0) {
      if (n == 0) {
        accMean = 0; accM2 = 0; accM3 = 0; accM4 = 0
      } else if (na == 0) {
        accMean = mean; accM2 = rowM2; accM3 = rowM3; accM4 = rowM4
      }
      continue
    }
    const delta = mean - accMean
    const deltaN = delta / n
    const deltaN2 = deltaN * deltaN
    const term1 = delta * deltaN * na * nb
    const m2a = accM2, m2b = rowM2
    const m3a = accM3, m3b = rowM3
    accMean = accMean + deltaN * nb
    accM2 = m2a + m2b + term1
    accM3 = m3a + m3b + term1 * deltaN * (na - nb) + 3 * deltaN * (na * m2b - nb * m2a)
    accM4 =
      accM4 +
      rowM4 +
      term1 * deltaN2 * (na * na - na * nb + nb * nb) +
      6 * deltaN2 * (na * na * m2b + nb * nb * m2a) +
      4 * deltaN * (na * m3b - nb * m3a)
  }
  writeMoments(out, accCount, accNan, accInf, accZero, accMin, accMax, accAbsmax, accMean, accM2, accM3, accM4)
}

// @ts-ignore: decorator
@inline function writeMoments(
  out: usize,
  count: f64, nan: f64, inf: f64, zeros: f64, lo: f64, hi: f64, absmax: f64, mean: f64, m2: f64, m3: f64, m4: f64,
): void {
  store<f64>(out + (<usize>COUNT << 3), count)
  store<f64>(out + (<usize>NAN << 3), nan)
  store<f64>(out + (<usize>INF << 3), inf)
  store<f64>(out + (<usize>ZERO << 3), zeros)
  store<f64>(out + (<usize>MIN << 3), lo)
  store<f64>(out + (<usize>MAX << 3), hi)
  store<f64>(out + (<usize>ABSMAX << 3), absmax)
  store<f64>(out + (<usize>MEAN << 3), mean)
  store<f64>(out + (<usize>M2 << 3), m2)
  store<f64>(out + (<usize>M3 << 3), m3)
  store<f64>(out + (<usize>M4 << 3), m4)
}

/** Whether a row holds a zero with the given sign bit (the ±0 tie-break of min and max). */
// @ts-ignore: decorator
@inline function rowHasZero(row: usize, dtype: i32, elementShift: i32, cols: i32, negative: bool): bool {
  for (let c = 0; c < cols; c++) {
    const x = load1(row + (<usize>c << elementShift), dtype)
    if (x == 0 && (reinterpret<u32>(x) >> 31 != 0) == negative) return true
  }
  return false
}

/**
 * The row's moments into out and the columns, for a row of finite values only; returns its Σx².
 * Returns -1 having written nothing (columns untouched) when the row holds an Inf or NaN.
 */
// @ts-ignore: decorator
@inline function scanRowFinite(
  row: usize,
  dtype: i32,
  elementShift: i32,
  cols: i32,
  channels: i32,
  colAbsmax: usize,
  colSumsq: usize,
  out: usize,
): f64 {
  const absMask = i32x4.splat(0x7fffffff)
  const zero = f32x4.splat(0)
  const cols4 = cols & ~3
  // Pass A: zeros, range, |x| bits and Σx per lane. (Σx² is summed in pass B, where the columns need the
  // squares anyway; same lanes, same order.)
  let zeroV = i32x4.splat(0)
  let minV = f32x4.splat(<f32>Infinity)
  let maxV = f32x4.splat(<f32>-Infinity)
  let absBitsV = i32x4.splat(0)
  let sumA = f64x2.splat(0), sumB = f64x2.splat(0)
  let c = 0
  for (; c < cols4; c += 4) {
    const v = load4(row + (<usize>c << elementShift), dtype)
    zeroV = i32x4.sub(zeroV, f32x4.eq(v, zero))
    minV = f32x4.pmin(minV, v) // ±0 ties fixed up below
    maxV = f32x4.pmax(maxV, v)
    absBitsV = i32x4.max_u(absBitsV, v128.and(v, absMask))
    const xA = f64x2.promote_low_f32x4(v)
    const xB = f64x2.promote_low_f32x4(i32x4.shuffle(v, v, 2, 3, 2, 3))
    sumA = f64x2.add(sumA, xA)
    sumB = f64x2.add(sumB, xB)
  }
  let zeros = laneSum(zeroV)
  let lo = min(min(f32x4.extract_lane(minV, 0), f32x4.extract_lane(minV, 1)), min(f32x4.extract_lane(minV, 2), f32x4.extract_lane(minV, 3)))
  let hi = max(max(f32x4.extract_lane(maxV, 0), f32x4.extract_lane(maxV, 1)), max(f32x4.extract_lane(maxV, 2), f32x4.extract_lane(maxV, 3)))
  let absBits = max(max(i32x4.extract_lane(absBitsV, 0) as u32, i32x4.extract_lane(absBitsV, 1) as u32), max(i32x4.extract_lane(absBitsV, 2) as u32, i32x4.extract_lane(absBitsV, 3) as u32))
  let s0 = f64x2.extract_lane(sumA, 0), s1 = f64x2.extract_lane(sumA, 1), s2 = f64x2.extract_lane(sumB, 0)
  for (; c < cols; c++) {
    const x = load1(row + (<usize>c << elementShift), dtype)
    absBits = max(absBits, reinterpret<u32>(x) & 0x7fffffff)
    if (x == 0) zeros++
    lo = min(lo, x)
    hi = max(hi, x)
    const lane = c - cols4
    if (lane == 0) s0 += <f64>x
    else if (lane == 1) s1 += <f64>x
    else s2 += <f64>x
  }
  if (absBits >= 0x7f800000) return -1 // an Inf or NaN: the careful path redoes the row
  if (lo == 0) lo = rowHasZero(row, dtype, elementShift, cols, true) ? <f32>-0.0 : <f32>0.0
  if (hi == 0) hi = rowHasZero(row, dtype, elementShift, cols, false) ? <f32>0.0 : <f32>-0.0
  const s3 = f64x2.extract_lane(sumB, 1)
  const mean: f64 = ((s0 + s2) + (s1 + s3)) / <f64>cols

  // Pass B: central sums about the row's mean; with channels, Σx² and the columns.
  const meanV = f64x2.splat(mean)
  let m2A = f64x2.splat(0), m3A = f64x2.splat(0), m4A = f64x2.splat(0)
  let m2B = f64x2.splat(0), m3B = f64x2.splat(0), m4B = f64x2.splat(0)
  let sqA = f64x2.splat(0), sqB = f64x2.splat(0)
  for (c = 0; c < cols4; c += 4) {
    const v = load4(row + (<usize>c << elementShift), dtype)
    const xA = f64x2.promote_low_f32x4(v)
    const xB = f64x2.promote_low_f32x4(i32x4.shuffle(v, v, 2, 3, 2, 3))
    if (channels) {
      const absAt = colAbsmax + (<usize>c << 2)
      // An integer max of the bits: |x| is a finite f32 ≥ +0, and for such values the signed integer order
      // is Math.max's order against any running value but a NaN with its sign bit set (the stream starts
      // each column at +0 and only raises it). One instruction, where f32x4.max's NaN rules cost several.
      v128.store(absAt, i32x4.max_s(v128.load(absAt), v128.and(v, absMask)))
      const xA2 = f64x2.mul(xA, xA)
      const xB2 = f64x2.mul(xB, xB)
      sqA = f64x2.add(sqA, xA2)
      sqB = f64x2.add(sqB, xB2)
      const sumAt = colSumsq + (<usize>c << 3)
      v128.store(sumAt, f64x2.add(v128.load(sumAt), xA2))
      v128.store(sumAt, f64x2.add(v128.load(sumAt, 16), xB2), 16)
    }
    const dA = f64x2.sub(xA, meanV)
    const dB = f64x2.sub(xB, meanV)
    const dA2 = f64x2.mul(dA, dA)
    const dB2 = f64x2.mul(dB, dB)
    m2A = f64x2.add(m2A, dA2)
    m2B = f64x2.add(m2B, dB2)
    m3A = f64x2.add(m3A, f64x2.mul(dA2, dA))
    m3B = f64x2.add(m3B, f64x2.mul(dB2, dB))
    m4A = f64x2.add(m4A, f64x2.mul(dA2, dA2))
    m4B = f64x2.add(m4B, f64x2.mul(dB2, dB2))
  }
  let c20 = f64x2.extract_lane(m2A, 0), c21 = f64x2.extract_lane(m2A, 1), c22 = f64x2.extract_lane(m2B, 0)
  let c30 = f64x2.extract_lane(m3A, 0), c31 = f64x2.extract_lane(m3A, 1), c32 = f64x2.extract_lane(m3B, 0)
  let c40 = f64x2.extract_lane(m4A, 0), c41 = f64x2.extract_lane(m4A, 1), c42 = f64x2.extract_lane(m4B, 0)
  let q0 = f64x2.extract_lane(sqA, 0), q1 = f64x2.extract_lane(sqA, 1), q2 = f64x2.extract_lane(sqB, 0)
  for (; c < cols; c++) {
    const x = load1(row + (<usize>c << elementShift), dtype)
    const lane = c - cols4
    if (channels) {
      const square = <f64>x * <f64>x
      const absAt = colAbsmax + (<usize>c << 2)
      const sumAt = colSumsq + (<usize>c << 3)
      store<f32>(absAt, max(load<f32>(absAt), abs<f32>(x)))
      store<f64>(sumAt, load<f64>(sumAt) + square)
      if (lane == 0) q0 += square
      else if (lane == 1) q1 += square
      else q2 += square
    }
    const d = <f64>x - mean
    const d2 = d * d
    if (lane == 0) { c20 += d2; c30 += d2 * d; c40 += d2 * d2 }
    else if (lane == 1) { c21 += d2; c31 += d2 * d; c41 += d2 * d2 }
    else { c22 += d2; c32 += d2 * d; c42 += d2 * d2 }
  }
  const c23 = f64x2.extract_lane(m2B, 1), c33 = f64x2.extract_lane(m3B, 1), c43 = f64x2.extract_lane(m4B, 1)
  const q3 = f64x2.extract_lane(sqB, 1)
  writeMoments(
    out, <f64>cols, 0, 0, <f64>zeros, <f64>lo, <f64>hi, <f64>reinterpret<f32>(absBits), mean,
    (c20 + c22) + (c21 + c23), (c30 + c32) + (c31 + c33), (c40 + c42) + (c41 + c43),
  )
  return (q0 + q2) + (q1 + q3)
}

/** The row's moments into out and the columns, any values (non-finite ones masked as in `moments`); returns its Σx². */
// @ts-ignore: decorator
@inline function scanRowCareful(
  row: usize,
  dtype: i32,
  elementShift: i32,
  cols: i32,
  channels: i32,
  colAbsmax: usize,
  colSumsq: usize,
  out: usize,
): f64 {
  const inf = f32x4.splat(<f32>Infinity)
  const negInf = f32x4.splat(<f32>-Infinity)
  const zero = f32x4.splat(0)
  const cols4 = cols & ~3
  // Pass A: counters, range, Σx and Σx² per lane; the columns.
  let nanV = i32x4.splat(0)
  let infV = i32x4.splat(0)
  let zeroV = i32x4.splat(0)
  let minV = inf
  let maxV = negInf
  // pmin/pmax may return either zero on a ±0 tie; the signs of the zeros seen fix that up (as in moments).
  let negZeroSeen = i32x4.splat(0)
  let posZeroSeen = i32x4.splat(0)
  let absV = zero
  let sumA = f64x2.splat(0), sumB = f64x2.splat(0)
  let sqA = f64x2.splat(0), sqB = f64x2.splat(0)
  let c = 0
  for (; c < cols4; c += 4) {
    const v = load4(row + (<usize>c << elementShift), dtype)
    const a = f32x4.abs(v)
    const finite = f32x4.lt(a, inf)
    nanV = i32x4.sub(nanV, f32x4.ne(v, v))
    infV = i32x4.sub(infV, f32x4.eq(a, inf))
    const isZero = f32x4.eq(v, zero)
    zeroV = i32x4.sub(zeroV, isZero)
    negZeroSeen = v128.or(negZeroSeen, v128.and(v, isZero))
    posZeroSeen = v128.or(posZeroSeen, v128.andnot(isZero, v))
    minV = f32x4.pmin(minV, v128.bitselect(v, inf, finite))
    maxV = f32x4.pmax(maxV, v128.bitselect(v, negInf, finite))
    const finiteAbs = v128.and(a, finite)
    absV = f32x4.pmax(absV, finiteAbs) // exact: no NaN, no -0
    const x = v128.and(v, finite)
    const xA = f64x2.promote_low_f32x4(x)
    const xB = f64x2.promote_low_f32x4(i32x4.shuffle(x, x, 2, 3, 2, 3))
    const xA2 = f64x2.mul(xA, xA)
    const xB2 = f64x2.mul(xB, xB)
    sumA = f64x2.add(sumA, xA)
    sumB = f64x2.add(sumB, xB)
    sqA = f64x2.add(sqA, xA2)
    sqB = f64x2.add(sqB, xB2)
    if (channels) {
      const absAt = colAbsmax + (<usize>c << 2)
      v128.store(absAt, f32x4.max(v128.load(absAt), finiteAbs))
      const sumAt = colSumsq + (<usize>c << 3)
      v128.store(sumAt, f64x2.add(v128.load(sumAt), xA2))
      v128.store(sumAt, f64x2.add(v128.load(sumAt, 16), xB2), 16)
    }
  }
  let nan = laneSum(nanV)
  let infinite = laneSum(infV)
  let zeros = laneSum(zeroV)
  let lo = min(min(f32x4.extract_lane(minV, 0), f32x4.extract_lane(minV, 1)), min(f32x4.extract_lane(minV, 2), f32x4.extract_lane(minV, 3)))
  let hi = max(max(f32x4.extract_lane(maxV, 0), f32x4.extract_lane(maxV, 1)), max(f32x4.extract_lane(maxV, 2), f32x4.extract_lane(maxV, 3)))
  if (lo == 0) lo = i32x4.bitmask(negZeroSeen) != 0 ? <f32>-0.0 : <f32>0.0
  if (hi == 0) hi = i32x4.bitmask(posZeroSeen) != 0 ? <f32>0.0 : <f32>-0.0
  let absmax = max(max(f32x4.extract_lane(absV, 0), f32x4.extract_lane(absV, 1)), max(f32x4.extract_lane(absV, 2), f32x4.extract_lane(absV, 3)))
  let s0 = f64x2.extract_lane(sumA, 0), s1 = f64x2.extract_lane(sumA, 1), s2 = f64x2.extract_lane(sumB, 0)
  let q0 = f64x2.extract_lane(sqA, 0), q1 = f64x2.extract_lane(sqA, 1), q2 = f64x2.extract_lane(sqB, 0)
  // The tail has at most 3 elements: lanes 0, 1, 2.
  for (; c < cols; c++) {
    const x = load1(row + (<usize>c << elementShift), dtype)
    const finite = abs<f32>(x) < <f32>Infinity
    if (channels) {
      const absAt = colAbsmax + (<usize>c << 2)
      const sumAt = colSumsq + (<usize>c << 3)
      store<f32>(absAt, max(load<f32>(absAt), finite ? abs<f32>(x) : 0))
      store<f64>(sumAt, load<f64>(sumAt) + (finite ? <f64>x * <f64>x : 0))
    }
    if (x != x) { nan++; continue }
    if (!finite) { infinite++; continue }
    if (x == 0) zeros++
    lo = min(lo, x)
    hi = max(hi, x)
    absmax = max(absmax, abs<f32>(x))
    const square = <f64>x * <f64>x
    const lane = c - cols4
    if (lane == 0) { s0 += <f64>x; q0 += square }
    else if (lane == 1) { s1 += <f64>x; q1 += square }
    else { s2 += <f64>x; q2 += square }
  }
  const s3 = f64x2.extract_lane(sumB, 1)
  const q3 = f64x2.extract_lane(sqB, 1)
  const count = cols - nan - infinite
  const mean: f64 = count > 0 ? ((s0 + s2) + (s1 + s3)) / <f64>count : 0

  // Pass B: central sums about the row's mean, d = f64(x) - mean, non-finite d masked to +0.
  const meanV = f64x2.splat(mean)
  let m2A = f64x2.splat(0), m3A = f64x2.splat(0), m4A = f64x2.splat(0)
  let m2B = f64x2.splat(0), m3B = f64x2.splat(0), m4B = f64x2.splat(0)
  for (c = 0; c < cols4; c += 4) {
    const v = load4(row + (<usize>c << elementShift), dtype)
    const finite = f32x4.lt(f32x4.abs(v), inf)
    const dA = v128.and(f64x2.sub(f64x2.promote_low_f32x4(v), meanV), i64x2.extend_low_i32x4_s(finite))
    const dB = v128.and(f64x2.sub(f64x2.promote_low_f32x4(i32x4.shuffle(v, v, 2, 3, 2, 3)), meanV), i64x2.extend_high_i32x4_s(finite))
    const dA2 = f64x2.mul(dA, dA)
    const dB2 = f64x2.mul(dB, dB)
    m2A = f64x2.add(m2A, dA2)
    m2B = f64x2.add(m2B, dB2)
    m3A = f64x2.add(m3A, f64x2.mul(dA2, dA))
    m3B = f64x2.add(m3B, f64x2.mul(dB2, dB))
    m4A = f64x2.add(m4A, f64x2.mul(dA2, dA2))
    m4B = f64x2.add(m4B, f64x2.mul(dB2, dB2))
  }
  let c20 = f64x2.extract_lane(m2A, 0), c21 = f64x2.extract_lane(m2A, 1), c22 = f64x2.extract_lane(m2B, 0)
  let c30 = f64x2.extract_lane(m3A, 0), c31 = f64x2.extract_lane(m3A, 1), c32 = f64x2.extract_lane(m3B, 0)
  let c40 = f64x2.extract_lane(m4A, 0), c41 = f64x2.extract_lane(m4A, 1), c42 = f64x2.extract_lane(m4B, 0)
  for (; c < cols; c++) {
    const x = load1(row + (<usize>c << elementShift), dtype)
    if (!(abs<f32>(x) < <f32>Infinity)) continue
    const d = <f64>x - mean
    const d2 = d * d
    const lane = c - cols4
    if (lane == 0) { c20 += d2; c30 += d2 * d; c40 += d2 * d2 }
    else if (lane == 1) { c21 += d2; c31 += d2 * d; c41 += d2 * d2 }
    else { c22 += d2; c32 += d2 * d; c42 += d2 * d2 }
  }
  const c23 = f64x2.extract_lane(m2B, 1), c33 = f64x2.extract_lane(m3B, 1), c43 = f64x2.extract_lane(m4B, 1)
  writeMoments(
    out, <f64>count, <f64>nan, <f64>infinite, <f64>zeros, <f64>lo, <f64>hi, <f64>absmax, mean,
    (c20 + c22) + (c21 + c23), (c30 + c32) + (c31 + c33), (c40 + c42) + (c41 + c43),
  )
  return (q0 + q2) + (q1 + q3)
}
