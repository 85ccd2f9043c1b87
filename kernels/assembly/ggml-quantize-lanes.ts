// llama.cpp's scale searches in SIMD lanes, for the plain K-quants (./ggml-quantize: Q4_K, Q5_K, Q6_K;
// ./ggml-quantize-kquants: Q2_K, Q3_K) and the weighted fits (./ggml-quantize-imatrix): here the lane
// helpers and the symmetric and Q3_K fits, four groups at a time; the asymmetric fit, eight at a time, is in
// ./ggml-quantize-asym; the steps after the fits are in ./ggml-quantize-levels. Lane k of every vector holds group k's value, so each lane runs
// exactly the scalar fit (the same f32 operations in the same order, every sum accumulated element by
// element), and the results are bit-identical to the scalar fits of the twins (kernels/reference/
// ggml-quantize.ts, ggml-quantize-kquants.ts, ggml-quantize-imatrix.ts). Branches become per-lane selects;
// a lane that the scalar code would leave early (an all-zero or flat group) runs on and is overridden at
// the end. Only lane-wise IEEE operations are used (no horizontal sums, no fused multiply-add), so nothing
// is reordered.
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
@inline export function roundFast(x: v128, magic: v128): v128 {
  return f32x4.sub(f32x4.add(x, magic), magic)
}

/**
 * splat(ROUNDING_MAGIC), stored to and loaded back from `at` (16 bytes of scratch): a value the compiler
 * cannot fold into each use, as V8 rebuilds a 128-bit constant at every use inside a loop.
 */
// @ts-ignore: decorator
@inline export function runtimeMagic(at: usize): v128 {
  v128.store(at, f32x4.splat(ROUNDING_MAGIC))
  return v128.load(at)
}

/** All-ones where v is finite (v − v is 0), zero for NaN and infinities. */
// @ts-ignore: decorator
@inline export function finiteMask(v: v128): v128 {
  return f32x4.eq(f32x4.sub(v, v), f32x4.splat(0))
}

/** Whether every lane outside `flat` has |a| < 2^21 and |b| < 2^21 (false for NaN). */
// @ts-ignore: decorator
@inline export function fastBound(a: v128, b: v128, flat: v128): bool {
  const limit = f32x4.splat(FAST_BOUND)
  return i32x4.all_true(v128.or(v128.and(f32x4.lt(f32x4.abs(a), limit), f32x4.lt(f32x4.abs(b), limit)), flat))
}

// @ts-ignore: decorator
@inline export function clampI(l: v128, lo: i32, hi: i32): v128 {
  return i32x4.max_s(i32x4.splat(lo), i32x4.min_s(i32x4.splat(hi), l))
}

// @ts-ignore: decorator
@inline export function laneAt(p: usize, i: i32): v128 {
  return v128.load(p + (<usize>i << 4))
}

/**
 * Per lane, the x[i] (i < n) of largest magnitude, the first of equals; 0 for a lane of zeros. Its
 * absolute value is the lane's max |x|, so a flat test needs no second pass.
 */
// @ts-ignore: decorator
@inline export function largestMagnitude(xT: usize, n: i32): v128 {
  let amax = f32x4.splat(0)
  let top = f32x4.splat(0)
  for (let i = 0; i < n; i++) {
    const v = laneAt(xT, i)
    const a = f32x4.abs(v)
    const bigger = f32x4.gt(a, amax)
    amax = v128.bitselect(a, amax, bigger)
    top = v128.bitselect(v, top, bigger)
  }
  return top
}

/** Lane k of dst[i] = p_k[i] for i < n (n a multiple of 4): four rows of f32 transposed, 4 × 4 at a time. */
export function transpose4(n: i32, p0: usize, p1: usize, p2: usize, p3: usize, dst: usize): void {
  for (let i = 0; i < n; i += 4) {
    const at = <usize>i << 2
    const a0 = v128.load(p0 + at)
    const a1 = v128.load(p1 + at)
    const a2 = v128.load(p2 + at)
    const a3 = v128.load(p3 + at)
    const lo01 = v128.shuffle<f32>(a0, a1, 0, 4, 1, 5)
    const hi01 = v128.shuffle<f32>(a0, a1, 2, 6, 3, 7)
    const lo23 = v128.shuffle<f32>(a2, a3, 0, 4, 1, 5)
    const hi23 = v128.shuffle<f32>(a2, a3, 2, 6, 3, 7)
    const d = dst + (<usize>i << 4)
    v128.store(d, v128.shuffle<f32>(lo01, lo23, 0, 1, 4, 5))
    v128.store(d, v128.shuffle<f32>(lo01, lo23, 2, 3, 6, 7), 16)
    v128.store(d, v128.shuffle<f32>(hi01, hi23, 0, 1, 4, 5), 32)
    v128.store(d, v128.shuffle<f32>(hi01, hi23, 2, 3, 6, 7), 48)
  }
}

/** Lane k's levels (u8, + `offset`) to L + k·stride + i, zero in the lanes of `zero`. */
// @ts-ignore: decorator
@inline export function storeLevels(levels: usize, n: i32, offset: i32, zero: v128, L: usize, stride: usize): void {
  for (let i = 0; i < n; i++) {
    const l = v128.andnot(i32x4.add(laneAt(levels, i), i32x4.splat(offset)), zero)
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
    const v = laneAt(xT, i)
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
    v128.store(levels + (<usize>i << 4), clampI(nearestInt4(f32x4.mul(bestIscale, laneAt(xT, i))), -nmax, nmax - 1))
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
  for (let i = 0; i < n; i++) v128.store(work + (<usize>i << 4), f32x4.mul(laneAt(wT, i), laneAt(xT, i)))
  for (let t = 0; t < SYM_TRIALS; t += 2) {
    const pair = t + 1 < SYM_TRIALS
    const iscale0 = symmetricIscale(nmax, t - 9, top)
    const iscale1 = pair ? symmetricIscale(nmax, t - 8, top) : iscale0
    let sumlx0 = zero
    let suml20 = zero
    let sumlx1 = zero
    let suml21 = zero
    for (let i = 0; i < n; i++) {
      const v = laneAt(xT, i)
      const w = laneAt(wT, i)
      const wv = laneAt(work, i)
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
    const v = laneAt(xT, i)
    const w = laneAt(wT, i)
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
      const v = laneAt(xT, i)
      const w = laneAt(wT, i)
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
 * make_q3_quants(16, 4, x, L, do_rmse = true) in four lanes (scalar: ./ggml-quantize-kquants' fitQ3 before
 * this, the twin's): the initial grid's levels −4..3, refined by up to five passes of coordinate descent
 * (weights x²). A lane whose pass changed nothing would leave the loop; running it again changes nothing
 * either (the pass depends only on the lane's state), so the lanes run until none changes. Levels + 4 to
 * u8 at L + k·stride (0 for an all-zero group); returns the four scales. `levels` is 16 × 16 bytes of scratch.
 */
export function fitQ3Lanes(xT: usize, levels: usize, L: usize, stride: usize): v128 {
  const zero = f32x4.splat(0)
  const top = largestMagnitude(xT, 16)
  const flat = f32x4.lt(f32x4.abs(top), f32x4.splat(GROUP_MAX_EPS))
  const iscale = f32x4.div(f32x4.splat(-4), top)
  let sumlx = zero
  let suml2 = zero
  for (let i = 0; i < 16; i++) {
    const v = laneAt(xT, i)
    const l = f32x4.convert_i32x4_s(clampI(nearestInt4(f32x4.mul(iscale, v)), -4, 3))
    v128.store(levels + (<usize>i << 4), l)
    const w = f32x4.mul(v, v)
    sumlx = f32x4.add(sumlx, f32x4.mul(f32x4.mul(w, v), l))
    suml2 = f32x4.add(suml2, f32x4.mul(f32x4.mul(w, l), l))
  }
  for (let itry = 0; itry < 5; itry++) {
    let changed = i32x4.splat(0)
    for (let i = 0; i < 16; i++) {
      const v = laneAt(xT, i)
      const w = f32x4.mul(v, v)
      const wv = f32x4.mul(w, v)
      const li = laneAt(levels, i)
      const slxOut = f32x4.sub(sumlx, f32x4.mul(wv, li))
      const sl2Out = f32x4.sub(suml2, f32x4.mul(f32x4.mul(w, li), li))
      const newL = f32x4.convert_i32x4_s(clampI(nearestInt4(f32x4.div(f32x4.mul(v, sl2Out), slxOut)), -4, 3))
      const slx = f32x4.add(slxOut, f32x4.mul(wv, newL))
      const sl2 = f32x4.add(sl2Out, f32x4.mul(f32x4.mul(w, newL), newL))
      const better = f32x4.gt(f32x4.mul(f32x4.mul(slx, slx), suml2), f32x4.mul(f32x4.mul(sumlx, sumlx), sl2))
      const accept = v128.and(
        v128.and(f32x4.gt(slxOut, zero), f32x4.ne(newL, li)),
        v128.and(f32x4.gt(sl2, zero), better),
      )
      if (!v128.any_true(accept)) continue
      v128.store(levels + (<usize>i << 4), v128.bitselect(newL, li, accept))
      sumlx = v128.bitselect(slx, sumlx, accept)
      suml2 = v128.bitselect(sl2, suml2, accept)
      changed = v128.or(changed, accept)
    }
    if (!v128.any_true(v128.andnot(changed, flat))) break
  }
  for (let i = 0; i < 16; i++) {
    v128.store(levels + (<usize>i << 4), i32x4.trunc_sat_f32x4_s(laneAt(levels, i)))
  }
  storeLevels(levels, 16, 4, flat, L, stride)
  const scale = v128.bitselect(f32x4.div(sumlx, suml2), zero, f32x4.gt(suml2, zero))
  return v128.andnot(scale, flat)
}
