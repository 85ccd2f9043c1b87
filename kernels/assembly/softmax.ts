// exp / log built from + − × ÷ only, and the per-token negative log-likelihood of the LM head.
//
// Why not Math.exp / Math.log: AssemblyScript's Math and JS's Math round differently, and the TS twin
// (kernels/reference/softmax.ts) must give identical bits. Both twins therefore evaluate the same
// IEEE f64 operations in the same order; the results are within ~2 ulp (f64) of the true values,
// far below the f32 rounding every caller applies afterwards.
//
// exp64(x): x ← min(max(x, −746), 710) (the ends saturate to 0 and +Infinity exactly;
//   NaN stays NaN); k = floor(x·log2(e) + 0.5); r = (x − k·LN2_HI) − k·LN2_LO (|r| ≤ 0.35, exact
//   first step because LN2_HI has 21 trailing zero bits); p = exp(r) by Taylor to degree 13 in
//   Horner form (truncation < 5e-18); result = (p·2^k1)·2^k2 with k1 = k >> 1, k2 = k − k1, so
//   both factors are normal and only the last product rounds (subnormal results included).
// log64(x): x = m·2^e with m ∈ [√½, √2); f = (m − 1)/(m + 1); log m = 2f·Σ_{n=0..10} f^{2n}/(2n+1)
//   (truncation < 3e-17); result = (e·LN2_LO + log m) + e·LN2_HI.
//
// expf32(x) / expf32x4(x), f32 arithmetic throughout (attention's softmax and the SIMD activations,
//   whose results are f32 anyway; about 4× cheaper than exp64 and vectorised):
//   x ← min(max(x, −104), 89) (the ends saturate to 0 and +Infinity exactly; NaN stays NaN);
//   k = floor(f32(x·LOG2E_F) + 0.5); r = (x − k·LN2_HI_F) − k·LN2_LO_F (k·LN2_HI_F exact);
//   p = Taylor to degree 7 in Horner form (truncation < 6e-9); result = (p·2^k1)·2^k2 with
//   k1 = k >> 1, k2 = k − k1, so both factors are normal and only the last product rounds
//   (subnormal and overflowing results round correctly). Error ≤ ~2 ulp.
//   (The relaxed-SIMD build fuses the Horner steps of expf32x4 and softmaxExp2f32x4: madd.ts.)
// softmaxExp2f32(x) / softmaxExp2f32x4(x), one softmax term in base 2, x = s − max with the scores in log2
//   units (attention folds log2(e) into its score scale, so 2^x is the term e^x would be in natural units):
//   0 where x < SOFTMAX_EXP2_MIN = −92 (NaN stays NaN); else x ← min(x, 127); k = x rounded half to even
//   (x + 1.5·2^23 is exact for |x| < 2^22; subtracting it back gives k, its low bits k as an integer);
//   r = x − k (exact, |r| ≤ 0.5); p = 2^r by a degree-6 minimax polynomial (coefficients EXP2_C0…C6, f32
//   Horner, ≤ 1.2 ulp); result = p·2^k, one rounding, 2^k normal for k ∈ [−92, 127].
//   Why base 2: no floor, no two-part ln 2 reduction and no split power of two, about a quarter of
//   attention's time on stories260K (head dim 8). Why the bound: next to the largest term, 2^0 = 1, a term
//   below 2^−92 ≈ 2e-28 cannot change an f64 sum S ≥ 1, and changes a weighted sum only where that sum is
//   itself below ~1e-20. Computed, such terms run into subnormal numbers (below 2^−126, or their products
//   with small values), which x86 works out in microcode about 100 times slower: peaked attention rows ran
//   4–6 times slower than flat ones.
//
// log_softmax_nll, per row t: m = max_v logits[t, v] (the value a plain `>` scan from first to last finds;
//   the kernel takes it in four lanes, the same value but for which zero of ±0, which changes no result);
//   e_v = softmaxExp2f32(f32(f32(logits[t, v] − m)·LOG2E_F)), the attention's base-2 term;
//   S = (a0 + a1) + (a2 + a3) in f64, a_j the f64 sum of e_v over v ≡ j (mod 4), v < V − V mod 4, from
//   v = 0 up; then the last V mod 4 terms added one by one;
//   nll[t] = log64(S) − (f64(logits[t, target]) − f64(m)). Targets < 0 write 0; targets ≥ V write NaN.
//   Terms are f32 (≤ 1.2 ulp, and the base-2 scaling's rounding), so S is off by at most
//   2^−22 + ln(V)·2^−23 relative (the exponent's error |l − m|·2^−23, weighted by the softmax, is at most
//   the entropy ≤ ln V times 2^−23): a perplexity moves by ~1e-7 relative, PyTorch's f32 log_softmax as
//   much. The terms were f64 before (a degree-13 exp64, two lanes): 8.6% of stories260K's perplexity
//   pass; four f32 lanes take about a quarter of that. f32 terms also stay clear of subnormals.

import { madd } from './madd'

/** log2(e); attention scales its scores by it over √d, into the log2 units of softmaxExp2f32. */
export const LOG2E: f64 = 1.4426950408889634
const LN2_HI: f64 = 6.93147180369123816490e-01
const LN2_LO: f64 = 1.90821492927058770002e-10
const EXP_MIN: f64 = -746.0
const EXP_MAX: f64 = 710.0

const LOG2E_F: f32 = <f32>1.4426950408889634
const LN2_HI_F: f32 = 0.693359375
const LN2_LO_F: f32 = <f32>-2.1219444005469058e-4
const EXPF_MIN: f32 = -104.0
const EXPF_MAX: f32 = 89.0
/** 1.5·2^23: adding it to a whole f32 of magnitude < 2^22 puts that number in the low mantissa bits. */
const EXPF_ROUNDER: f32 = 12582912.0
const EXPF_C7: f32 = <f32>(1.0 / 5040.0)
const EXPF_C6: f32 = <f32>(1.0 / 720.0)
const EXPF_C5: f32 = <f32>(1.0 / 120.0)
const EXPF_C4: f32 = <f32>(1.0 / 24.0)
const EXPF_C3: f32 = <f32>(1.0 / 6.0)

// @ts-ignore: decorator
@inline function pow2(k: i32): f64 {
  // k ∈ [−1022, 1023]: a normal power of two, exact (exp64 only asks for k ∈ [−538, 512]).
  return reinterpret<f64>(<i64>(k + 1023) << 52)
}

export function exp64(x: f64): f64 {
  if (x != x) return x
  x = min<f64>(max<f64>(x, EXP_MIN), EXP_MAX)
  const kf = Math.floor(x * LOG2E + 0.5)
  const r = (x - kf * LN2_HI) - kf * LN2_LO
  let p = 1.0 / 6227020800.0
  p = p * r + 1.0 / 479001600.0
  p = p * r + 1.0 / 39916800.0
  p = p * r + 1.0 / 3628800.0
  p = p * r + 1.0 / 362880.0
  p = p * r + 1.0 / 40320.0
  p = p * r + 1.0 / 5040.0
  p = p * r + 1.0 / 720.0
  p = p * r + 1.0 / 120.0
  p = p * r + 1.0 / 24.0
  p = p * r + 1.0 / 6.0
  p = p * r + 0.5
  p = p * r + 1.0
  p = p * r + 1.0
  const k = <i32>kf
  const k1 = k >> 1
  return (p * pow2(k1)) * pow2(k - k1)
}

/** Scalar twin of expf32x4 (the same operations lane by lane), for loop tails. */
export function expf32(x: f32): f32 {
  x = min<f32>(max<f32>(x, EXPF_MIN), EXPF_MAX)
  const kf = Mathf.floor(x * LOG2E_F + 0.5)
  const r = (x - kf * LN2_HI_F) - kf * LN2_LO_F
  let p = EXPF_C7
  p = p * r + EXPF_C6
  p = p * r + EXPF_C5
  p = p * r + EXPF_C4
  p = p * r + EXPF_C3
  p = p * r + 0.5
  p = p * r + 1.0
  p = p * r + 1.0
  if (kf != kf) return kf
  const k = <i32>kf
  const k1 = k >> 1, k2 = k - k1
  return (p * reinterpret<f32>((k1 + 127) << 23)) * reinterpret<f32>((k2 + 127) << 23)
}

/** e^x in each f32 lane. */
// @ts-ignore: decorator
@inline export function expf32x4(x: v128): v128 {
  // pmax/pmin (one instruction each; max/min take several to order NaN and ±0) clamp alike here: the
  // bounds are neither NaN nor zero, and a NaN x comes through as NaN.
  x = f32x4.pmin(f32x4.pmax(x, lanes(EXPF_MIN_AT)), lanes(EXPF_MAX_AT))
  const kf = f32x4.floor(f32x4.add(f32x4.mul(x, lanes(LOG2E_F_AT)), lanes(HALF_AT)))
  const r = f32x4.sub(f32x4.sub(x, f32x4.mul(kf, lanes(LN2_HI_F_AT))), f32x4.mul(kf, lanes(LN2_LO_F_AT)))
  let p = lanes(EXPF_C7_AT)
  p = madd(lanes(EXPF_C6_AT), p, r)
  p = madd(lanes(EXPF_C5_AT), p, r)
  p = madd(lanes(EXPF_C4_AT), p, r)
  p = madd(lanes(EXPF_C3_AT), p, r)
  p = madd(lanes(HALF_AT), p, r)
  p = madd(lanes(ONE_AT), p, r)
  p = madd(lanes(ONE_AT), p, r)
  // kf is a whole number in [−150, 129], so kf + 1.5·2^23 is exact and its bits minus those of 1.5·2^23
  // are k (cheaper than trunc_sat). NaN lanes get k = 0, as trunc_sat gave, and p is already NaN.
  const rounder = lanes(ROUNDER_AT)
  const k = v128.and(i32x4.sub(f32x4.add(kf, rounder), rounder), f32x4.eq(kf, kf))
  const k1 = i32x4.shr_s(k, 1)
  const k2 = i32x4.sub(k, k1)
  const bias = lanes(EXPONENT_BIAS_AT)
  return f32x4.mul(f32x4.mul(p, i32x4.shl(i32x4.add(k1, bias), 23)), i32x4.shl(i32x4.add(k2, bias), 23))
}

/** Softmax terms below 2^SOFTMAX_EXP2_MIN are dropped (see the header); the twin's constant, held equal by the tests. */
const SOFTMAX_EXP2_MIN: f32 = -92.0
/** 127 << 23 less the bits of EXPF_ROUNDER shifted by 23, modulo 2^32 (see softmaxExp2f32x4). */
const EXP2_POW_BIAS: i32 = (127 << 23) - (reinterpret<i32>(EXPF_ROUNDER) << 23)
const EXP2_MAX: f32 = 127.0
/** 2^r ≈ C0 + r·(C1 + r·(… + r·C6)) on [−0.5, 0.5]: minimax for relative error (1.9e-9), rounded to f32. */
const EXP2_C0: f32 = 1.0
const EXP2_C1: f32 = 0.6931471824645996
const EXP2_C2: f32 = 0.24022646248340607
const EXP2_C3: f32 = 0.05550328642129898
const EXP2_C4: f32 = 0.009618489071726799
const EXP2_C5: f32 = 0.0013399930903688073
const EXP2_C6: f32 = 0.0001534581242594868

// The SIMD helpers read their constants from this table as lane broadcasts (v128.load32_splat), not as
// v128.const: V8 11 (Node 20) builds every v128.const inside a loop anew from a 64-bit immediate, two
// shuffle-port µops each, and the exponentials' twenty constants bound their loops (expf32x4 1.95 → 1.30
// ns an element alone). A broadcast load takes a load port only. Entries are 32-bit: f32, or the i32 bits.
const LANE_CONSTANTS = memory.data<i32>([
  reinterpret<i32>(EXPF_MIN), reinterpret<i32>(EXPF_MAX), reinterpret<i32>(LOG2E_F), reinterpret<i32>(<f32>0.5),
  reinterpret<i32>(LN2_HI_F), reinterpret<i32>(LN2_LO_F), reinterpret<i32>(EXPF_C7), reinterpret<i32>(EXPF_C6),
  reinterpret<i32>(EXPF_C5), reinterpret<i32>(EXPF_C4), reinterpret<i32>(EXPF_C3), reinterpret<i32>(<f32>1.0),
  reinterpret<i32>(EXPF_ROUNDER), 127,
  reinterpret<i32>(SOFTMAX_EXP2_MIN), reinterpret<i32>(EXP2_MAX), reinterpret<i32>(EXP2_C1), reinterpret<i32>(EXP2_C2),
  reinterpret<i32>(EXP2_C3), reinterpret<i32>(EXP2_C4), reinterpret<i32>(EXP2_C5), reinterpret<i32>(EXP2_C6),
  EXP2_POW_BIAS, reinterpret<i32>(EXP2_C0),
])
const EXPF_MIN_AT = 0, EXPF_MAX_AT = 1, LOG2E_F_AT = 2, HALF_AT = 3, LN2_HI_F_AT = 4, LN2_LO_F_AT = 5
const EXPF_C7_AT = 6, EXPF_C6_AT = 7, EXPF_C5_AT = 8, EXPF_C4_AT = 9, EXPF_C3_AT = 10, ONE_AT = 11
const ROUNDER_AT = 12, EXPONENT_BIAS_AT = 13
const EXP2_MIN_AT = 14, EXP2_MAX_AT = 15, EXP2_C1_AT = 16, EXP2_C2_AT = 17, EXP2_C3_AT = 18, EXP2_C4_AT = 19
const EXP2_C5_AT = 20, EXP2_C6_AT = 21, EXP2_POW_BIAS_AT = 22, EXP2_C0_AT = 23

/** Table entry `at` in all four lanes. */
// @ts-ignore: decorator
@inline function lanes(at: i32): v128 {
  return v128.load32_splat(LANE_CONSTANTS + (<usize>at << 2))
}

export function softmax_exp2_min(): f32 {
  return SOFTMAX_EXP2_MIN
}

/** One base-2 softmax term (scalar twin of softmaxExp2f32x4, lane by lane the same operations). */
export function softmaxExp2f32(x: f32): f32 {
  if (x < SOFTMAX_EXP2_MIN) return 0
  x = min<f32>(x, EXP2_MAX)
  const y = x + EXPF_ROUNDER
  const kf = y - EXPF_ROUNDER
  const r = x - kf
  let p = EXP2_C6
  p = p * r + EXP2_C5
  p = p * r + EXP2_C4
  p = p * r + EXP2_C3
  p = p * r + EXP2_C2
  p = p * r + EXP2_C1
  p = p * r + EXP2_C0
  if (kf != kf) return kf
  return p * reinterpret<f32>((<i32>kf + 127) << 23)
}

/** softmaxExp2f32 in each lane; no lane is ever computed below the bound, so none turns subnormal. */
// @ts-ignore: decorator
@inline export function softmaxExp2f32x4(x: v128): v128 {
  const lo = lanes(EXP2_MIN_AT)
  const dropped = f32x4.lt(x, lo)
  // pmax/pmin keep a NaN x (comparisons with NaN are false), and `dropped` is false for it: NaN comes out.
  const xc = f32x4.pmin(f32x4.pmax(x, lo), lanes(EXP2_MAX_AT))
  const rounder = lanes(ROUNDER_AT)
  const y = f32x4.add(xc, rounder)
  const r = f32x4.sub(xc, f32x4.sub(y, rounder))
  let p = lanes(EXP2_C6_AT)
  p = madd(lanes(EXP2_C5_AT), p, r)
  p = madd(lanes(EXP2_C4_AT), p, r)
  p = madd(lanes(EXP2_C3_AT), p, r)
  p = madd(lanes(EXP2_C2_AT), p, r)
  p = madd(lanes(EXP2_C1_AT), p, r)
  p = madd(lanes(EXP2_C0_AT), p, r)
  // y's bits less the rounder's are k (two's complement in the low mantissa bits); shifted into the
  // exponent field they give 2^k once the bias is added. Modulo 2^32, (y − R) << 23 + B = y << 23 + (B −
  // R << 23): one subtraction fewer. A NaN lane's p is NaN, whatever this makes.
  const pow2k = i32x4.add(i32x4.shl(y, 23), lanes(EXP2_POW_BIAS_AT))
  return v128.andnot(f32x4.mul(p, pow2k), dropped)
}

/**
 * out[i] = softmaxExp2f32(x[i]) for i < n: the SIMD lanes four at a time, then the scalar twin. Attention
 * inlines the lanes; this export lets the tests hold both to the TS twin on any inputs.
 */
export function softmax_exp2(x: usize, out: usize, n: i32): void {
  const n4 = n & ~3
  let i = 0
  for (; i < n4; i += 4) v128.store(out + (<usize>i << 2), softmaxExp2f32x4(v128.load(x + (<usize>i << 2))))
  for (; i < n; i++) store<f32>(out + (<usize>i << 2), softmaxExp2f32(load<f32>(x + (<usize>i << 2))))
}

/** Natural log for x > 0 (0 → −Infinity, negatives and NaN → NaN, +Infinity → +Infinity). */
export function log64(x: f64): f64 {
  if (!(x > 0)) return x == 0 ? -Infinity : NaN
  if (x == Infinity) return x
  let e: i32 = 0
  if (x < 2.2250738585072014e-308) { // subnormal: make it normal first (exact)
    x *= 18014398509481984.0 // 2^54
    e = -54
  }
  const bits = reinterpret<u64>(x)
  e += <i32>((bits >> 52) & 0x7ff) - 1023
  let m = reinterpret<f64>((bits & 0x000fffffffffffff) | 0x3ff0000000000000)
  if (m > 1.4142135623730951) { m *= 0.5; e += 1 }
  const f = (m - 1.0) / (m + 1.0)
  const s = f * f
  let p = 1.0 / 21.0
  p = p * s + 1.0 / 19.0
  p = p * s + 1.0 / 17.0
  p = p * s + 1.0 / 15.0
  p = p * s + 1.0 / 13.0
  p = p * s + 1.0 / 11.0
  p = p * s + 1.0 / 9.0
  p = p * s + 1.0 / 7.0
  p = p * s + 1.0 / 5.0
  p = p * s + 1.0 / 3.0
  p = p * s + 1.0
  const logM = 2.0 * f * p
  const ef = <f64>e
  return (ef * LN2_LO + logM) + ef * LN2_HI
}

/** nll[t] = logsumexp(logits[t, ·]) − logits[t, targets[t]]; logits f32 [T, V], targets i32 [T], nll f64 [T]. */
export function log_softmax_nll(logits: usize, targets: usize, nll: usize, T: i32, V: i32): void {
  const V4 = V & ~3
  const log2e = f32x4.splat(LOG2E_F)
  for (let t = 0; t < T; t++) {
    const row = logits + ((<usize>t * <usize>V) << 2)
    const target = load<i32>(targets + (<usize>t << 2))
    const out = nll + (<usize>t << 3)
    if (target < 0) { store<f64>(out, 0); continue }
    if (target >= V) { store<f64>(out, NaN); continue }
    // pmax(m, l) is `l > m ? l : m` per lane, the scan's own step.
    let m: f32 = load<f32>(row)
    let v = 0
    if (V4 > 0) {
      let mv = f32x4.splat(m)
      for (; v < V4; v += 4) mv = f32x4.pmax(mv, v128.load(row + (<usize>v << 2)))
      for (let j = 0; j < 4; j++) {
        const l = f32x4.extract_lane(mv, 0)
        if (l > m) m = l
        mv = v128.shuffle<f32>(mv, mv, 1, 2, 3, 0)
      }
    }
    for (; v < V; v++) {
      const l = load<f32>(row + (<usize>v << 2))
      if (l > m) m = l
    }
    const mv = f32x4.splat(m)
    let lo = f64x2.splat(0),
      hi = f64x2.splat(0)
    for (v = 0; v < V4; v += 4) {
      const x = f32x4.mul(f32x4.sub(v128.load(row + (<usize>v << 2)), mv), log2e)
      const e = softmaxExp2f32x4(x)
      lo = f64x2.add(lo, f64x2.promote_low_f32x4(e))
      hi = f64x2.add(hi, f64x2.promote_low_f32x4(v128.shuffle<f32>(e, e, 2, 3, 0, 1)))
    }
    let sum = (f64x2.extract_lane(lo, 0) + f64x2.extract_lane(lo, 1)) + (f64x2.extract_lane(hi, 0) + f64x2.extract_lane(hi, 1))
    for (; v < V; v++) sum += <f64>softmaxExp2f32((load<f32>(row + (<usize>v << 2)) - m) * LOG2E_F)
    store<f64>(out, log64(sum) - (<f64>load<f32>(row + (<usize>target << 2)) - <f64>m))
  }
}
