// Plain-TS twin of kernels/assembly/softmax.ts, bit-exact: the same f64 operations in the same order.
//
// exp64(x): x ← min(max(x, −746), 710); k = floor(x·log2(e) + 0.5); r = (x − k·LN2_HI) − k·LN2_LO;
//   p = exp(r) by Taylor to degree 13 in Horner form; result = (p·2^k1)·2^k2, k1 = k >> 1,
//   k2 = k − k1 (exact powers of two from a table). The wasm side runs the same steps in f64x2
//   lanes (log_softmax_nll) or one at a time; both give these bits.
// log64(x): x = m·2^e with m ∈ [√½, √2); f = (m − 1)/(m + 1); log m = 2f·Σ_{n=0..10} f^{2n}/(2n+1);
//   result = (e·LN2_LO + log m) + e·LN2_HI.
// expF32(x): f32 arithmetic (Math.fround after every operation), as the wasm expf32 / expf32x4:
//   x ← min(max(x, −104), 89); k = floor(f32(x·LOG2E_F) + 0.5); r = (x − k·LN2_HI_F) − k·LN2_LO_F;
//   p = Taylor to degree 7 in Horner form; result = f32(f32(p·2^k1)·2^k2), k1 = k >> 1, k2 = k − k1.
// softmaxExp2F32(x): one base-2 softmax term (x = s − max, scores in log2 units), as the wasm softmaxExp2f32 /
//   softmaxExp2f32x4: 0 where x < SOFTMAX_EXP2_MIN; else x ← min(x, 127), k = x rounded half to even,
//   r = x − k, p = the degree-6 polynomial EXP2_C in Horner form, result = f32(p·2^k). Why base 2 and why
//   the bound: kernels/assembly/softmax.ts.
// logSoftmaxNll, per row t: m = max_v logits[t, v] (a plain `>` scan, first to last);
//   e_v = softmaxExp2F32(f32(f32(logits[t, v] − m)·LOG2E_F)); S = (a0 + a1) + (a2 + a3) in f64, a_j the
//   sum from v = 0 up of e_v over v ≡ j (mod 4) below V − V mod 4, then the last V mod 4 terms one by one;
//   nll[t] = log64(S) − (logits[t, target] − m). Targets < 0 give 0; targets ≥ V give NaN. The error
//   bound and why f32 terms: kernels/assembly/softmax.ts.

import { kernelArgError, requireLength, requireSizes } from './matmul'

const LOG2E = 1.4426950408889634
const LN2_HI = 6.9314718036912381649e-1
const LN2_LO = 1.90821492927058770002e-10
const EXP_MIN = -746
const EXP_MAX = 710
const SMALLEST_NORMAL = 2.2250738585072014e-308
const SQRT2 = 1.4142135623730951

const f = Math.fround
const LOG2E_F = f(1.4426950408889634)
const LN2_HI_F = 0.693359375
const LN2_LO_F = f(-2.1219444005469058e-4)
const EXPF_MIN = -104
const EXPF_MAX = 89
const EXPF_C7 = f(1.0 / 5040.0)
const EXPF_C6 = f(1.0 / 720.0)
const EXPF_C5 = f(1.0 / 120.0)
const EXPF_C4 = f(1.0 / 24.0)
const EXPF_C3 = f(1.0 / 6.0)

/** POW2[k + 1022] = 2^k for k ∈ [−1022, 1023], built by exact doubling and halving. */
const POW2: Float64Array = (() => {
  const table = new Float64Array(2046)
  table[1022] = 1
  for (let k = 1; k <= 1023; k++) table[1022 + k] = table[1022 + k - 1] * 2
  for (let k = -1; k >= -1022; k--) table[1022 + k] = table[1022 + k + 1] * 0.5
  return table
})()

function pow2(k: number): number {
  return POW2[k + 1022]
}

export function exp64(x: number): number {
  if (x !== x) return x
  x = Math.min(Math.max(x, EXP_MIN), EXP_MAX)
  const kf = Math.floor(x * LOG2E + 0.5)
  const r = x - kf * LN2_HI - kf * LN2_LO
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
  const k1 = kf >> 1
  return p * pow2(k1) * pow2(kf - k1)
}

/** e^x for an f32 x, to f32 (≤ ~2 ulp), bit-identical to the wasm expf32 / expf32x4. */
export function expF32(x: number): number {
  x = Math.min(Math.max(x, EXPF_MIN), EXPF_MAX)
  const kf = Math.floor(f(f(x * LOG2E_F) + 0.5))
  const r = f(f(x - f(kf * LN2_HI_F)) - f(kf * LN2_LO_F))
  let p = EXPF_C7
  p = f(f(p * r) + EXPF_C6)
  p = f(f(p * r) + EXPF_C5)
  p = f(f(p * r) + EXPF_C4)
  p = f(f(p * r) + EXPF_C3)
  p = f(f(p * r) + 0.5)
  p = f(f(p * r) + 1.0)
  p = f(f(p * r) + 1.0)
  if (kf !== kf) return kf
  const k1 = kf >> 1,
    k2 = kf - k1
  return f(f(p * pow2(k1)) * pow2(k2))
}

/** Base-2 softmax terms 2^x below x = SOFTMAX_EXP2_MIN are dropped (the kernel's softmax_exp2_min(), held equal by the tests). */
export const SOFTMAX_EXP2_MIN = -92
/** 2^r on [−0.5, 0.5], c0 … c6: minimax for relative error, rounded to f32 (the kernel's EXP2_C0…C6). */
const EXP2_C = [
  1.0, 0.6931471824645996, 0.24022646248340607, 0.05550328642129898, 0.009618489071726799, 0.0013399930903688073,
  0.0001534581242594868,
].map(f)
/** 1.5·2^23: adding it to an f32 of magnitude < 2^22 rounds that number to a whole one, half to even. */
const ROUNDER = 12582912

/** One base-2 softmax term 2^x (x = s − max in log2 units), 0 below SOFTMAX_EXP2_MIN; bit-identical to the wasm softmaxExp2f32(x4). */
export function softmaxExp2F32(x: number): number {
  if (x < SOFTMAX_EXP2_MIN) return 0
  x = Math.min(x, 127)
  const k = f(f(x + ROUNDER) - ROUNDER)
  const r = f(x - k)
  let p = EXP2_C[6]
  for (let c = 5; c >= 0; c--) p = f(f(p * r) + EXP2_C[c])
  if (k !== k) return k
  return f(p * pow2(k))
}

/** Natural log for x > 0 (0 → −Infinity, negatives and NaN → NaN, +Infinity → +Infinity). */
export function log64(x: number): number {
  if (!(x > 0)) return x === 0 ? -Infinity : NaN
  if (x === Infinity) return x
  let e = 0
  if (x < SMALLEST_NORMAL) {
    x *= 18014398509481984.0 // 2^54, exact
    e = -54
  }
  // m = x / 2^floor(log2 x) exactly: Math.log2 may be off by one near powers of two, so correct it.
  let k = Math.floor(Math.log2(x))
  if (k > 1022) k = 1022
  if (k < -1022) k = -1022
  let m = x * pow2(-k)
  while (m >= 2) {
    m *= 0.5
    k += 1
  }
  while (m < 1) {
    m *= 2
    k -= 1
  }
  e += k
  if (m > SQRT2) {
    m *= 0.5
    e += 1
  }
  const ratio = (m - 1.0) / (m + 1.0)
  const s = ratio * ratio
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
  const logM = 2.0 * ratio * p
  return e * LN2_LO + logM + e * LN2_HI
}

/** nll[t] = logsumexp(logits[t, ·]) − logits[t, targets[t]]; logits [T, V]; targets < 0 give 0. */
export function logSoftmaxNll(
  logits: Float32Array,
  targets: Int32Array,
  nll: Float64Array,
  T: number,
  V: number,
): void {
  const name = 'log_softmax_nll'
  requireSizes(name, { T, V })
  if (V === 0 && T > 0) throw kernelArgError(name, 'V = 0: no vocabulary to normalise over')
  requireLength(name, 'logits', logits, T * V)
  requireLength(name, 'targets', targets, T)
  requireLength(name, 'nll', nll, T)
  for (let t = 0; t < T; t++) {
    const row = t * V
    const target = targets[t]
    if (target < 0) {
      nll[t] = 0
      continue
    }
    if (target >= V) {
      nll[t] = NaN
      continue
    }
    let m = logits[row]
    for (let v = 1; v < V; v++) {
      const l = logits[row + v]
      if (l > m) m = l
    }
    const term = (v: number): number => softmaxExp2F32(f(f(logits[row + v] - m) * LOG2E_F))
    const V4 = V - (V % 4)
    const lanes = [0, 0, 0, 0]
    for (let v = 0; v < V4; v++) lanes[v % 4] += term(v)
    let sum = lanes[0] + lanes[1] + (lanes[2] + lanes[3])
    for (let v = V4; v < V; v++) sum += term(v)
    nll[t] = log64(sum) - (logits[row + target] - m)
  }
}
