// The weighted scale searches of ./ggml-quantize-imatrix, four groups at a time: lane k of every vector
// holds group k's value, so each lane runs exactly the scalar fit (the same f32 operations in the same
// order, every sum accumulated element by element), and the results are bit-identical to the scalar fits
// and to the twin (kernels/reference/ggml-quantize-imatrix.ts). Branches become per-lane selects; a lane
// that the scalar code would leave early (an all-zero or flat group) runs on and is overridden at the end.
// Only lane-wise IEEE operations are used (no horizontal sums, no fused multiply-add), so nothing is
// reordered.
//
// The groups are transposed into scratch first: xT[i] = (x0[i], x1[i], x2[i], x3[i]) and wT[i] likewise
// (16 bytes per element). Levels are recomputed from the winning trial's parameters at the end, as the
// scalar fits' stored levels are exactly those of their last winning trial.

const GROUP_MAX_EPS: f32 = 1e-15
const ONE_TENTH: f32 = 0.1
const ROUNDING_MAGIC: f32 = 12582912.0 // 1.5 * 2^23, as ./ggml-quantize's nearestInt

/** nearestInt per lane: round half to even through the mantissa of x + 1.5 * 2^23; NaN gives 0. */
// @ts-ignore: decorator
@inline function nearestInt4(x: v128): v128 {
  const bits = i32x4.sub(v128.and(f32x4.add(x, f32x4.splat(ROUNDING_MAGIC)), i32x4.splat(0x7fffff)), i32x4.splat(0x400000))
  return v128.andnot(bits, f32x4.ne(x, x))
}

// @ts-ignore: decorator
@inline function clampI(l: v128, lo: i32, hi: i32): v128 {
  return i32x4.max_s(i32x4.splat(lo), i32x4.min_s(i32x4.splat(hi), l))
}

// @ts-ignore: decorator
@inline function at(p: usize, i: i32): v128 {
  return v128.load(p + (<usize>i << 4))
}

/** Lane k's levels (u8, + `offset`) to L + k·stride + i, zero in the lanes of `zero`. */
function storeLevels(levels: usize, n: i32, offset: i32, zero: v128, L: usize, stride: usize): void {
  for (let i = 0; i < n; i++) {
    const l = v128.andnot(i32x4.add(at(levels, i), i32x4.splat(offset)), zero)
    store<u8>(L + <usize>i, <u8>i32x4.extract_lane(l, 0))
    store<u8>(L + stride + <usize>i, <u8>i32x4.extract_lane(l, 1))
    store<u8>(L + 2 * stride + <usize>i, <u8>i32x4.extract_lane(l, 2))
    store<u8>(L + 3 * stride + <usize>i, <u8>i32x4.extract_lane(l, 3))
  }
}

/**
 * make_qx_quants(n, nmax, x, L, 1, w) in four lanes (scalar: fitSymmetric): levels + nmax to u8 at
 * L + k·stride; returns the four scales. `levels` is n × 16 bytes of scratch.
 */
export function fitSymmetric4(n: i32, nmax: i32, xT: usize, wT: usize, levels: usize, L: usize, stride: usize): v128 {
  let amax = f32x4.splat(0)
  let top = f32x4.splat(0)
  for (let i = 0; i < n; i++) {
    const v = at(xT, i)
    const a = f32x4.abs(v)
    const bigger = f32x4.gt(a, amax)
    amax = v128.bitselect(a, amax, bigger)
    top = v128.bitselect(v, top, bigger)
  }
  const flat = f32x4.lt(amax, f32x4.splat(GROUP_MAX_EPS))
  let iscale = f32x4.div(f32x4.splat(<f32>-nmax), top)
  let sumlx = f32x4.splat(0)
  let suml2 = f32x4.splat(0)
  for (let i = 0; i < n; i++) {
    const v = at(xT, i)
    const w = at(wT, i)
    const l = f32x4.convert_i32x4_s(clampI(nearestInt4(f32x4.mul(iscale, v)), -nmax, nmax - 1))
    sumlx = f32x4.add(sumlx, f32x4.mul(f32x4.mul(w, v), l))
    suml2 = f32x4.add(suml2, f32x4.mul(f32x4.mul(w, l), l))
  }
  const zero = f32x4.splat(0)
  let scale = v128.bitselect(f32x4.div(sumlx, suml2), zero, f32x4.ne(suml2, zero))
  let best = f32x4.mul(scale, sumlx)
  let bestIscale = iscale
  for (let is = -9; is <= 9; is++) {
    if (is == 0) continue
    iscale = f32x4.div(f32x4.neg(f32x4.splat(<f32>nmax + ONE_TENTH * <f32>is)), top)
    sumlx = zero
    suml2 = zero
    for (let i = 0; i < n; i++) {
      const v = at(xT, i)
      const w = at(wT, i)
      const l = f32x4.convert_i32x4_s(clampI(nearestInt4(f32x4.mul(iscale, v)), -nmax, nmax - 1))
      sumlx = f32x4.add(sumlx, f32x4.mul(f32x4.mul(w, v), l))
      suml2 = f32x4.add(suml2, f32x4.mul(f32x4.mul(w, l), l))
    }
    const win = v128.and(f32x4.gt(suml2, zero), f32x4.gt(f32x4.mul(sumlx, sumlx), f32x4.mul(best, suml2)))
    if (!v128.any_true(win)) continue
    const trialScale = f32x4.div(sumlx, suml2)
    scale = v128.bitselect(trialScale, scale, win)
    best = v128.bitselect(f32x4.mul(trialScale, sumlx), best, win)
    bestIscale = v128.bitselect(iscale, bestIscale, win)
  }
  for (let i = 0; i < n; i++) {
    v128.store(levels + (<usize>i << 4), clampI(nearestInt4(f32x4.mul(bestIscale, at(xT, i))), -nmax, nmax - 1))
  }
  storeLevels(levels, n, nmax, flat, L, stride)
  return v128.andnot(scale, flat)
}

/**
 * make_qkx3_quants(n, nmax, x, w, L, …, −0.9, 0.05, 36, squared error) in four lanes (scalar: fitAsym):
 * levels to u8 at L + k·stride, the four `the_min`s to `mins` (f32[4]); returns the four scales.
 * `levels` is n × 16 bytes of scratch.
 */
export function fitAsym4(n: i32, nmax: i32, xT: usize, wT: usize, levels: usize, L: usize, stride: usize, mins: usize): v128 {
  const zero = f32x4.splat(0)
  let lo = at(xT, 0)
  let hi = lo
  let sumW = at(wT, 0)
  let sumX = f32x4.mul(sumW, lo)
  for (let i = 1; i < n; i++) {
    const v = at(xT, i)
    lo = v128.bitselect(v, lo, f32x4.lt(v, lo))
    hi = v128.bitselect(v, hi, f32x4.gt(v, hi))
    const w = at(wT, i)
    sumW = f32x4.add(sumW, w)
    sumX = f32x4.add(sumX, f32x4.mul(w, v))
  }
  lo = v128.bitselect(zero, lo, f32x4.gt(lo, zero))
  const flat = f32x4.eq(hi, lo)
  const flatMin = f32x4.neg(lo)
  const nmaxF = f32x4.splat(<f32>nmax)
  let iscale = f32x4.div(nmaxF, f32x4.sub(hi, lo))
  let scale = f32x4.div(f32x4.splat(1), iscale)
  let bestError = zero
  for (let i = 0; i < n; i++) {
    const v = at(xT, i)
    const l = f32x4.convert_i32x4_s(clampI(nearestInt4(f32x4.mul(iscale, f32x4.sub(v, lo))), 0, nmax))
    const diff = f32x4.sub(f32x4.add(f32x4.mul(scale, l), lo), v)
    bestError = f32x4.add(bestError, f32x4.mul(at(wT, i), f32x4.mul(diff, diff)))
  }
  let levelIscale = iscale
  let levelLo = lo
  for (let is = 0; is <= 36; is++) {
    iscale = f32x4.div(f32x4.splat(<f32>-0.9 + <f32>0.05 * <f32>is + <f32>nmax), f32x4.sub(hi, lo))
    let sumL = zero
    let sumL2 = zero
    let sumXL = zero
    for (let i = 0; i < n; i++) {
      const v = at(xT, i)
      const l = f32x4.convert_i32x4_s(clampI(nearestInt4(f32x4.mul(iscale, f32x4.sub(v, lo))), 0, nmax))
      v128.store(levels + (<usize>i << 4), l)
      const wl = f32x4.mul(at(wT, i), l)
      sumL = f32x4.add(sumL, wl)
      sumL2 = f32x4.add(sumL2, f32x4.mul(wl, l))
      sumXL = f32x4.add(sumXL, f32x4.mul(wl, v))
    }
    const D = f32x4.sub(f32x4.mul(sumW, sumL2), f32x4.mul(sumL, sumL))
    const positive = f32x4.gt(D, zero)
    if (!v128.any_true(positive)) continue
    let thisScale = f32x4.div(f32x4.sub(f32x4.mul(sumW, sumXL), f32x4.mul(sumX, sumL)), D)
    let thisMin = f32x4.div(f32x4.sub(f32x4.mul(sumL2, sumX), f32x4.mul(sumL, sumXL)), D)
    const minAbove = f32x4.gt(thisMin, zero)
    thisMin = v128.bitselect(zero, thisMin, minAbove)
    thisScale = v128.bitselect(f32x4.div(sumXL, sumL2), thisScale, minAbove)
    let curError = zero
    for (let i = 0; i < n; i++) {
      const diff = f32x4.sub(f32x4.add(f32x4.mul(thisScale, at(levels, i)), thisMin), at(xT, i))
      curError = f32x4.add(curError, f32x4.mul(at(wT, i), f32x4.mul(diff, diff)))
    }
    const win = v128.and(positive, f32x4.lt(curError, bestError))
    if (!v128.any_true(win)) continue
    levelIscale = v128.bitselect(iscale, levelIscale, win)
    levelLo = v128.bitselect(lo, levelLo, win)
    bestError = v128.bitselect(curError, bestError, win)
    scale = v128.bitselect(thisScale, scale, win)
    lo = v128.bitselect(thisMin, lo, win)
  }
  for (let i = 0; i < n; i++) {
    const l = clampI(nearestInt4(f32x4.mul(levelIscale, f32x4.sub(at(xT, i), levelLo))), 0, nmax)
    v128.store(levels + (<usize>i << 4), l)
  }
  storeLevels(levels, n, 0, flat, L, stride)
  v128.store(mins, v128.bitselect(flatMin, f32x4.neg(lo), flat))
  return v128.andnot(scale, flat)
}
