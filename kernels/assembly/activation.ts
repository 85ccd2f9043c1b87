// Elementwise activations and residual adds. Twin: kernels/reference/activation.ts (bit-exact).
//
// silu_mul and gelu_tanh run four lanes at a time in f32 arithmetic with expf32x4 (softmax.ts), each
// operation rounding to f32 (loop tails use the scalar expf32, identical lane by lane):
//   silu_mul:  out = (g / (1 + expf32(−g))) · u                          (SwiGLU: silu(gate) · up)
//   gelu_tanh: z = K·(x + 0.044715·((x·x)·x)) with K = 2·√(2/π); out = x / (1 + expf32(−z))
//              (0.5·(1 + tanh(z/2)) = 1/(1 + e^(−z)), so no tanh and no cancellation for x < 0)
// gelu_erf is rarer and needs erf, so it is scalar f64 with exp64, rounded to f32 once:
//   gelu_erf:  out = f32(0.5 · x · erfc64(−x·√½))                       (exact GELU)
// erfc64(z), for a = |z|: a < 2 → 1 − (2/√π)·e^(−a²)·Σ_n (2a²)^n·a / (1·3·…·(2n+1)) (all terms
//   positive, stop once a term is < 1e-17 of the sum); a ≥ 2 → e^(−a²)/√π / (a + ½/(a + 1/(a + …)))
//   continued fraction evaluated from depth 40 upwards; z < 0 → 2 − erfc64(a).
//   Relative error ≤ ~2e-13 against a correctly rounded erfc, so GELU is right to f32 rounding.
// relu / add_inplace / add_bias_rows are single f32 operations per element (SIMD, exact).

import { exp64, expf32, expf32x4 } from './softmax'

const GELU_TANH_K: f32 = <f32>1.5957691216057308 // 2·√(2/π)
const GELU_TANH_C: f32 = <f32>0.044715
const SQRT_HALF: f64 = 0.7071067811865476
const TWO_OVER_SQRT_PI: f64 = 1.1283791670955126
const ONE_OVER_SQRT_PI: f64 = 0.5641895835477563
const ERFC_SERIES_LIMIT: f64 = 2.0
const ERFC_CF_DEPTH: i32 = 40

export function erfc64(z: f64): f64 {
  if (z != z) return z
  const a = Math.abs(z)
  let c: f64
  if (a < ERFC_SERIES_LIMIT) {
    const twoA2 = 2.0 * a * a
    let term = a, sum = a
    for (let n = 1; n < 200; n++) {
      term = term * twoA2 / <f64>(2 * n + 1)
      sum += term
      if (term <= sum * 1e-17) break
    }
    c = 1.0 - TWO_OVER_SQRT_PI * exp64(-(a * a)) * sum
  } else {
    let f = a
    for (let n = ERFC_CF_DEPTH; n >= 1; n--) f = a + (<f64>n * 0.5) / f
    c = exp64(-(a * a)) * ONE_OVER_SQRT_PI / f
  }
  return z < 0 ? 2.0 - c : c
}

/** out[i] = silu(g[i]) · u[i]; out may alias g or u. */
export function silu_mul(g: usize, u: usize, out: usize, n: i32): void {
  const n4 = n & ~3
  const one = f32x4.splat(1)
  let i = 0
  for (; i < n4; i += 4) {
    const o = <usize>i << 2
    const gv = v128.load(g + o)
    const silu = f32x4.div(gv, f32x4.add(one, expf32x4(f32x4.neg(gv))))
    v128.store(out + o, f32x4.mul(silu, v128.load(u + o)))
  }
  for (; i < n; i++) {
    const o = <usize>i << 2
    const gv = load<f32>(g + o)
    store<f32>(out + o, (gv / (1 + expf32(-gv))) * load<f32>(u + o))
  }
}

/** GPT-2's gelu_new (tanh approximation); out may alias x. */
export function gelu_tanh(x: usize, out: usize, n: i32): void {
  const n4 = n & ~3
  const one = f32x4.splat(1), c = f32x4.splat(GELU_TANH_C), kv = f32x4.splat(GELU_TANH_K)
  let i = 0
  for (; i < n4; i += 4) {
    const o = <usize>i << 2
    const v = v128.load(x + o)
    const cube = f32x4.mul(f32x4.mul(v, v), v)
    const z = f32x4.mul(kv, f32x4.add(v, f32x4.mul(c, cube)))
    v128.store(out + o, f32x4.div(v, f32x4.add(one, expf32x4(f32x4.neg(z)))))
  }
  for (; i < n; i++) {
    const o = <usize>i << 2
    const v = load<f32>(x + o)
    const z = GELU_TANH_K * (v + GELU_TANH_C * ((v * v) * v))
    store<f32>(out + o, v / (1 + expf32(-z)))
  }
}

/** Exact GELU, 0.5·x·(1 + erf(x/√2)); out may alias x. */
export function gelu_erf(x: usize, out: usize, n: i32): void {
  for (let i = 0; i < n; i++) {
    const o = <usize>i << 2
    const v = <f64>load<f32>(x + o)
    store<f32>(out + o, <f32>(0.5 * v * erfc64(-(v * SQRT_HALF))))
  }
}

/** out = max(x, +0) per lane (wasm max: NaN stays NaN, −0 becomes +0); out may alias x. */
export function relu(x: usize, out: usize, n: i32): void {
  const n4 = n & ~3
  const zero = f32x4.splat(0)
  let i = 0
  for (; i < n4; i += 4) {
    const o = <usize>i << 2
    v128.store(out + o, f32x4.max(v128.load(x + o), zero))
  }
  for (; i < n; i++) {
    const o = <usize>i << 2
    store<f32>(out + o, max<f32>(load<f32>(x + o), 0))
  }
}

/** a[i] += b[i] (the residual add). */
export function add_inplace(a: usize, b: usize, n: i32): void {
  const n4 = n & ~3
  let i = 0
  for (; i < n4; i += 4) {
    const o = <usize>i << 2
    v128.store(a + o, f32x4.add(v128.load(a + o), v128.load(b + o)))
  }
  for (; i < n; i++) {
    const o = <usize>i << 2
    store<f32>(a + o, load<f32>(a + o) + load<f32>(b + o))
  }
}

/** x[t·N + j] += b[j] for every row t. */
export function add_bias_rows(x: usize, b: usize, T: i32, N: i32): void {
  for (let t = 0; t < T; t++) add_inplace(x + ((<usize>t * <usize>N) << 2), b, N)
}
