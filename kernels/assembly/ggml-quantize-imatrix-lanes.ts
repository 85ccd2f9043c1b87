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
//
// Speed (issue #13: with an imatrix at least as fast as without): when every value of the four groups is
// finite and a trial's products iscale·x provably stay below 2^21 in magnitude, a level is rounded in the
// float domain, (y + 1.5·2^23) − 1.5·2^23, and clamped with f32x4.pmin/pmax (single instructions; exact
// for non-NaN values): for such y that is exactly nearestInt's integer (the same sum's mantissa, ties to
// even), so nothing changes but the cost (no NaN mask, no int conversion). Otherwise (NaN, infinities,
// overflowing scales) the trial runs the checked integer path. A flat lane (all-zero group) may compute
// garbage in the fast path; it is overridden at the end as before. The symmetric fit's trials do not
// depend on each other until the choice, so their sums are computed two trials per pass (independent add
// chains) and chosen afterwards in the scalar order. The asymmetric fit keeps x − min per element until a
// win moves a lane's min, and skips the clamp when its bounds show no product can leave (−0.5, nmax + 0.5).
// Both fits are bound by f32 operation throughput: 19 (symmetric) or 37 (asymmetric, with an error pass
// each) trials cost several times the one pass of the plain quantizers.

const GROUP_MAX_EPS: f32 = 1e-15
const ONE_TENTH: f32 = 0.1
const ROUNDING_MAGIC: f32 = 12582912.0 // 1.5 * 2^23, as ./ggml-quantize's nearestInt
const FAST_BOUND: f32 = 2097152.0 // 2^21: below it, float rounding through ROUNDING_MAGIC equals nearestInt
const SYM_TRIALS = 19 // is = -9..9 (is = 0 is the initial grid)

/** nearestInt per lane: round half to even through the mantissa of x + 1.5 * 2^23; NaN gives 0. */
// @ts-ignore: decorator
@inline export function nearestInt4(x: v128): v128 {
  const bits = i32x4.sub(v128.and(f32x4.add(x, f32x4.splat(ROUNDING_MAGIC)), i32x4.splat(0x7fffff)), i32x4.splat(0x400000))
  return v128.andnot(bits, f32x4.ne(x, x))
}

/**
 * nearestInt per lane as a float, for |x| < 2^22 (not NaN): the same rounding as nearestInt4. `magic` is
 * splat(ROUNDING_MAGIC) from runtimeMagic, held in a register across the loop.
 */
// @ts-ignore: decorator
@inline function roundFast(x: v128, magic: v128): v128 {
  return f32x4.sub(f32x4.add(x, magic), magic)
}

/**
 * splat(ROUNDING_MAGIC), stored to and loaded back from `at` (16 bytes of scratch): a value the compiler
 * cannot fold into each use, as V8 rebuilds a 128-bit constant at every use inside a loop.
 */
// @ts-ignore: decorator
@inline function runtimeMagic(at: usize): v128 {
  v128.store(at, f32x4.splat(ROUNDING_MAGIC))
  return v128.load(at)
}

/** All-ones where v is finite (v − v is 0), zero for NaN and infinities. */
// @ts-ignore: decorator
@inline function finiteMask(v: v128): v128 {
  return f32x4.eq(f32x4.sub(v, v), f32x4.splat(0))
}

/** Whether every lane outside `flat` has |a| < 2^21 and |b| < 2^21 (false for NaN). */
// @ts-ignore: decorator
@inline function fastBound(a: v128, b: v128, flat: v128): bool {
  const limit = f32x4.splat(FAST_BOUND)
  return i32x4.all_true(v128.or(v128.and(f32x4.lt(f32x4.abs(a), limit), f32x4.lt(f32x4.abs(b), limit)), flat))
}

// @ts-ignore: decorator
@inline export function clampI(l: v128, lo: i32, hi: i32): v128 {
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
 * L + k·stride; returns the four scales. `levels` is n × 16 bytes of scratch, `work` SYM_WORK_BYTES (n ≤ 32).
 */
export function fitSymmetric4(
  n: i32,
  nmax: i32,
  xT: usize,
  wT: usize,
  levels: usize,
  L: usize,
  stride: usize,
  work: usize,
): v128 {
  let amax = f32x4.splat(0)
  let top = f32x4.splat(0)
  let finite = i32x4.splat(-1)
  for (let i = 0; i < n; i++) {
    const v = at(xT, i)
    const a = f32x4.abs(v)
    const bigger = f32x4.gt(a, amax)
    amax = v128.bitselect(a, amax, bigger)
    top = v128.bitselect(v, top, bigger)
    finite = v128.and(finite, finiteMask(v))
  }
  const flat = f32x4.lt(amax, f32x4.splat(GROUP_MAX_EPS))
  // With every x finite, a lane that is not flat has |top| >= 1e-15 and |x| <= |top|, so |iscale·x| <= nmax + 1:
  // every trial may round in the float domain.
  const bestIscale = i32x4.all_true(finite)
    ? symmetricTrialsFast(n, nmax, xT, wT, top, work)
    : symmetricTrialsChecked(n, nmax, xT, wT, top, work)
  for (let i = 0; i < n; i++) {
    v128.store(levels + (<usize>i << 4), clampI(nearestInt4(f32x4.mul(bestIscale, at(xT, i))), -nmax, nmax - 1))
  }
  storeLevels(levels, n, nmax, flat, L, stride)
  return v128.andnot(v128.load(work + SYM_SCALE), flat)
}

/** Bytes of `work` fitSymmetric4 uses: w·x per element, the 19 trials' two sums, and the chosen scales. */
export const SYM_WORK_BYTES: i32 = 32 * 16 + SYM_TRIALS * 32 + 16
const SYM_SCALE: usize = 32 * 16 + SYM_TRIALS * 32 // where the trials leave the lanes' scales

// @ts-ignore: decorator
@inline function symmetricIscale(nmax: i32, is: i32, top: v128): v128 {
  return f32x4.div(f32x4.neg(f32x4.splat(<f32>nmax + ONE_TENTH * <f32>is)), top)
}

/**
 * The fast trials: w·x once per element, the sums of every trial two trials per pass, then the scalar
 * fit's choice in its order (is = 0 first, then −9..9). Returns the winning iscale; scales to work + SYM_SCALE.
 */
function symmetricTrialsFast(n: i32, nmax: i32, xT: usize, wT: usize, top: v128, work: usize): v128 {
  const zero = f32x4.splat(0)
  const lo = f32x4.splat(<f32>-nmax)
  const hi = f32x4.splat(<f32>(nmax - 1))
  const sums = work + (<usize>32 << 4)
  const magic = runtimeMagic(work + SYM_SCALE)
  for (let i = 0; i < n; i++) v128.store(work + (<usize>i << 4), f32x4.mul(at(wT, i), at(xT, i)))
  for (let t = 0; t < SYM_TRIALS; t += 2) {
    const pair = t + 1 < SYM_TRIALS
    const iscale0 = symmetricIscale(nmax, t - 9, top)
    const iscale1 = pair ? symmetricIscale(nmax, t - 8, top) : iscale0
    let sumlx0 = zero
    let suml20 = zero
    let sumlx1 = zero
    let suml21 = zero
    for (let i = 0; i < n; i++) {
      const v = at(xT, i)
      const w = at(wT, i)
      const wv = at(work, i)
      const l0 = f32x4.pmax(lo, f32x4.pmin(hi, roundFast(f32x4.mul(iscale0, v), magic)))
      const l1 = f32x4.pmax(lo, f32x4.pmin(hi, roundFast(f32x4.mul(iscale1, v), magic)))
      sumlx0 = f32x4.add(sumlx0, f32x4.mul(wv, l0))
      suml20 = f32x4.add(suml20, f32x4.mul(f32x4.mul(w, l0), l0))
      sumlx1 = f32x4.add(sumlx1, f32x4.mul(wv, l1))
      suml21 = f32x4.add(suml21, f32x4.mul(f32x4.mul(w, l1), l1))
    }
    v128.store(sums + (<usize>t << 5), sumlx0)
    v128.store(sums + (<usize>t << 5), suml20, 16)
    if (pair) {
      v128.store(sums + (<usize>(t + 1) << 5), sumlx1)
      v128.store(sums + (<usize>(t + 1) << 5), suml21, 16)
    }
  }
  let sumlx = v128.load(sums + (<usize>9 << 5))
  let suml2 = v128.load(sums + (<usize>9 << 5), 16)
  let scale = v128.bitselect(f32x4.div(sumlx, suml2), zero, f32x4.ne(suml2, zero))
  let best = f32x4.mul(scale, sumlx)
  let bestIscale = symmetricIscale(nmax, 0, top)
  for (let is = -9; is <= 9; is++) {
    if (is == 0) continue
    sumlx = v128.load(sums + (<usize>(is + 9) << 5))
    suml2 = v128.load(sums + (<usize>(is + 9) << 5), 16)
    const win = v128.and(f32x4.gt(suml2, zero), f32x4.gt(f32x4.mul(sumlx, sumlx), f32x4.mul(best, suml2)))
    if (!v128.any_true(win)) continue
    const trialScale = f32x4.div(sumlx, suml2)
    scale = v128.bitselect(trialScale, scale, win)
    best = v128.bitselect(f32x4.mul(trialScale, sumlx), best, win)
    bestIscale = v128.bitselect(symmetricIscale(nmax, is, top), bestIscale, win)
  }
  v128.store(work + SYM_SCALE, scale)
  return bestIscale
}

/** The trials with nearestInt's checks (NaN gives level 0), for groups holding NaN or infinities. */
function symmetricTrialsChecked(n: i32, nmax: i32, xT: usize, wT: usize, top: v128, work: usize): v128 {
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
  v128.store(work + SYM_SCALE, scale)
  return bestIscale
}

/**
 * make_qkx3_quants(n, nmax, x, w, L, …, −0.9, 0.05, 36, squared error) in four lanes (scalar: fitAsym):
 * levels to u8 at L + k·stride, the four `the_min`s to `mins` (f32[4]); returns the four scales.
 * `levels` and `work` are n × 16 bytes of scratch each.
 */
export function fitAsym4(
  n: i32,
  nmax: i32,
  xT: usize,
  wT: usize,
  levels: usize,
  L: usize,
  stride: usize,
  mins: usize,
  work: usize,
): v128 {
  const zero = f32x4.splat(0)
  let lo = at(xT, 0)
  let hi = lo
  let sumW = at(wT, 0)
  let sumX = f32x4.mul(sumW, lo)
  let finite = finiteMask(lo)
  for (let i = 1; i < n; i++) {
    const v = at(xT, i)
    lo = v128.bitselect(v, lo, f32x4.lt(v, lo))
    hi = v128.bitselect(v, hi, f32x4.gt(v, hi))
    finite = v128.and(finite, finiteMask(v))
    const w = at(wT, i)
    sumW = f32x4.add(sumW, w)
    sumX = f32x4.add(sumX, f32x4.mul(w, v))
  }
  const allFinite = i32x4.all_true(finite)
  const magic = runtimeMagic(mins) // mins is written at the end
  const xlo = lo // every x lies in [xlo, hi]
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
  let differencesValid = false
  for (let is = 0; is <= 36; is++) {
    const range = f32x4.sub(hi, lo)
    iscale = f32x4.div(f32x4.splat(<f32>-0.9 + <f32>0.05 * <f32>is + <f32>nmax), range)
    let sumL = zero
    let sumL2 = zero
    let sumXL = zero
    // x − lo lies between xlo − lo and hi − lo, and rounding is monotone: these two products bound every
    // lane's iscale·(x − lo).
    const top = f32x4.mul(iscale, range)
    const bottom = f32x4.mul(iscale, f32x4.sub(xlo, lo))
    if (allFinite && fastBound(top, bottom, flat)) {
      // x − lo per element, kept until a win moves some lane's lo.
      if (!differencesValid) {
        for (let i = 0; i < n; i++) v128.store(work + (<usize>i << 4), f32x4.sub(at(xT, i), lo))
        differencesValid = true
      }
      // Products in (−0.5, nmax + 0.5) round into [0, nmax]: no clamp (most trials before a win).
      const inside = v128.and(f32x4.gt(bottom, f32x4.splat(-0.5)), f32x4.lt(top, f32x4.splat(<f32>nmax + 0.5)))
      if (i32x4.all_true(v128.or(inside, flat))) {
        for (let i = 0; i < n; i++) {
          const l = roundFast(f32x4.mul(iscale, at(work, i)), magic)
          v128.store(levels + (<usize>i << 4), l)
          const wl = f32x4.mul(at(wT, i), l)
          sumL = f32x4.add(sumL, wl)
          sumL2 = f32x4.add(sumL2, f32x4.mul(wl, l))
          sumXL = f32x4.add(sumXL, f32x4.mul(wl, at(xT, i)))
        }
      } else {
        for (let i = 0; i < n; i++) {
          const l = f32x4.pmax(zero, f32x4.pmin(nmaxF, roundFast(f32x4.mul(iscale, at(work, i)), magic)))
          v128.store(levels + (<usize>i << 4), l)
          const wl = f32x4.mul(at(wT, i), l)
          sumL = f32x4.add(sumL, wl)
          sumL2 = f32x4.add(sumL2, f32x4.mul(wl, l))
          sumXL = f32x4.add(sumXL, f32x4.mul(wl, at(xT, i)))
        }
      }
    } else {
      for (let i = 0; i < n; i++) {
        const v = at(xT, i)
        const l = f32x4.convert_i32x4_s(clampI(nearestInt4(f32x4.mul(iscale, f32x4.sub(v, lo))), 0, nmax))
        v128.store(levels + (<usize>i << 4), l)
        const wl = f32x4.mul(at(wT, i), l)
        sumL = f32x4.add(sumL, wl)
        sumL2 = f32x4.add(sumL2, f32x4.mul(wl, l))
        sumXL = f32x4.add(sumXL, f32x4.mul(wl, v))
      }
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
    differencesValid = false
  }
  for (let i = 0; i < n; i++) {
    const l = clampI(nearestInt4(f32x4.mul(levelIscale, f32x4.sub(at(xT, i), levelLo))), 0, nmax)
    v128.store(levels + (<usize>i << 4), l)
  }
  storeLevels(levels, n, 0, flat, L, stride)
  v128.store(mins, v128.bitselect(flatMin, f32x4.neg(lo), flat))
  return v128.andnot(scale, flat)
}
