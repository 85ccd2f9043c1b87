// moments: counts, range and central moment sums of an f32 chunk, in two passes.
// Twin: kernels/reference/stats.ts, which defines the layout of `out` and the exact summation order
// (element i -> lane i % 4; lanes 0,1 in one f64x2 and 2,3 in another; tail added to its lane after the
// vector loop; lanes combined as (l0 + l2) + (l1 + l3)). Bit-exact with the twin.

// Indices into out (f64[11]); must match MOMENT_* in kernels/reference/stats.ts.
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
@inline function outAt(out: usize, index: i32): usize {
  return out + (<usize>index << 3)
}

// @ts-ignore: decorator
@inline function laneSum(v: v128): i32 {
  return (i32x4.extract_lane(v, 0) + i32x4.extract_lane(v, 1)) + (i32x4.extract_lane(v, 2) + i32x4.extract_lane(v, 3))
}

export function moments(ptr: usize, n: i32, out: usize): void {
  const inf = f32x4.splat(<f32>Infinity)
  const negInf = f32x4.splat(<f32>-Infinity)
  const zero = f32x4.splat(0)
  const n4 = n & ~3

  // Pass 1: counters, range and the sum.
  let nanV = i32x4.splat(0)
  let infV = i32x4.splat(0)
  let zeroV = i32x4.splat(0)
  let minV = inf
  let maxV = negInf
  // pmin/pmax are single instructions but may return either zero on a ±0 tie; the sign bits of the zeros
  // seen fix that up after the loop, so the result equals the exact min/max of the twin's Math.min/max.
  let negZeroSeen = i32x4.splat(0) // sign bit set once a -0 was seen
  let posZeroSeen = i32x4.splat(0) // sign bit set once a +0 was seen
  let absV = zero
  let sumA = f64x2.splat(0) // lanes 0, 1
  let sumB = f64x2.splat(0) // lanes 2, 3
  let i = 0
  for (; i < n4; i += 4) {
    const v = v128.load(ptr + (<usize>i << 2))
    const a = f32x4.abs(v)
    const finite = f32x4.lt(a, inf) // false for NaN and ±Inf
    // Comparison lanes are all ones (-1): subtracting them counts.
    nanV = i32x4.sub(nanV, f32x4.ne(v, v))
    infV = i32x4.sub(infV, f32x4.eq(a, inf))
    const isZero = f32x4.eq(v, zero)
    zeroV = i32x4.sub(zeroV, isZero)
    negZeroSeen = v128.or(negZeroSeen, v128.and(v, isZero))
    posZeroSeen = v128.or(posZeroSeen, v128.andnot(isZero, v))
    minV = f32x4.pmin(minV, v128.bitselect(v, inf, finite)) // no NaN reaches pmin/pmax
    maxV = f32x4.pmax(maxV, v128.bitselect(v, negInf, finite))
    absV = f32x4.pmax(absV, v128.and(a, finite)) // pmax is exact here: no NaN, no -0
    const x = v128.and(v, finite) // non-finite -> +0
    sumA = f64x2.add(sumA, f64x2.promote_low_f32x4(x))
    sumB = f64x2.add(sumB, f64x2.promote_low_f32x4(i32x4.shuffle(x, x, 2, 3, 2, 3)))
  }
  let nan = laneSum(nanV)
  let infinite = laneSum(infV)
  let zeros = laneSum(zeroV)
  let lo = min(min(f32x4.extract_lane(minV, 0), f32x4.extract_lane(minV, 1)), min(f32x4.extract_lane(minV, 2), f32x4.extract_lane(minV, 3)))
  let hi = max(max(f32x4.extract_lane(maxV, 0), f32x4.extract_lane(maxV, 1)), max(f32x4.extract_lane(maxV, 2), f32x4.extract_lane(maxV, 3)))
  if (lo == 0) lo = i32x4.bitmask(negZeroSeen) != 0 ? <f32>-0.0 : <f32>0.0
  if (hi == 0) hi = i32x4.bitmask(posZeroSeen) != 0 ? <f32>0.0 : <f32>-0.0
  let absmax = max(max(f32x4.extract_lane(absV, 0), f32x4.extract_lane(absV, 1)), max(f32x4.extract_lane(absV, 2), f32x4.extract_lane(absV, 3)))
  let s0 = f64x2.extract_lane(sumA, 0)
  let s1 = f64x2.extract_lane(sumA, 1)
  let s2 = f64x2.extract_lane(sumB, 0)
  // The tail has at most 3 elements: lanes 0, 1, 2.
  for (; i < n; i++) {
    const x = load<f32>(ptr + (<usize>i << 2))
    if (x != x) { nan++; continue }
    if (abs<f32>(x) == <f32>Infinity) { infinite++; continue }
    if (x == 0) zeros++
    lo = min(lo, x)
    hi = max(hi, x)
    absmax = max(absmax, abs<f32>(x))
    const lane = i - n4
    if (lane == 0) s0 += <f64>x
    else if (lane == 1) s1 += <f64>x
    else s2 += <f64>x
  }
  const s3 = f64x2.extract_lane(sumB, 1)
  const count = n - nan - infinite
  const sum = (s0 + s2) + (s1 + s3)
  const mean: f64 = count > 0 ? sum / <f64>count : 0

  // Pass 2: central sums, d = f64(x) - mean, non-finite d masked to +0.
  const meanV = f64x2.splat(mean)
  let m2A = f64x2.splat(0), m3A = f64x2.splat(0), m4A = f64x2.splat(0)
  let m2B = f64x2.splat(0), m3B = f64x2.splat(0), m4B = f64x2.splat(0)
  for (i = 0; i < n4; i += 4) {
    const v = v128.load(ptr + (<usize>i << 2))
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
  for (; i < n; i++) {
    const x = load<f32>(ptr + (<usize>i << 2))
    if (!(abs<f32>(x) < <f32>Infinity)) continue
    const d = <f64>x - mean
    const d2 = d * d
    const lane = i - n4
    if (lane == 0) { c20 += d2; c30 += d2 * d; c40 += d2 * d2 }
    else if (lane == 1) { c21 += d2; c31 += d2 * d; c41 += d2 * d2 }
    else { c22 += d2; c32 += d2 * d; c42 += d2 * d2 }
  }
  const c23 = f64x2.extract_lane(m2B, 1), c33 = f64x2.extract_lane(m3B, 1), c43 = f64x2.extract_lane(m4B, 1)

  store<f64>(outAt(out, COUNT), <f64>count)
  store<f64>(outAt(out, NAN), <f64>nan)
  store<f64>(outAt(out, INF), <f64>infinite)
  store<f64>(outAt(out, ZERO), <f64>zeros)
  store<f64>(outAt(out, MIN), <f64>lo)
  store<f64>(outAt(out, MAX), <f64>hi)
  store<f64>(outAt(out, ABSMAX), <f64>absmax)
  store<f64>(outAt(out, MEAN), mean)
  store<f64>(outAt(out, M2), (c20 + c22) + (c21 + c23))
  store<f64>(outAt(out, M3), (c30 + c32) + (c31 + c33))
  store<f64>(outAt(out, M4), (c40 + c42) + (c41 + c43))
}
