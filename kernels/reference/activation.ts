// Plain-TS twin of kernels/assembly/activation.ts, bit-exact. f32 arithmetic (fround after every
// operation) with expF32 for:
//   silu_mul:  out = (g / (1 + expF32(−g))) · u
//   gelu_tanh: z = K·(x + 0.044715·((x·x)·x)) with K = 2·√(2/π); out = x / (1 + expF32(−z))
// f64, rounded once:
//   gelu_erf:  out = f32(0.5 · x · erfc64(−x·√½))
//   relu:      out = max(x, +0) (NaN stays NaN, −0 becomes +0, as wasm's f32x4.max)
//   add_inplace / add_bias_rows: one f32 add per element.
// erfc64 is the same series / continued fraction as the AssemblyScript one (see that file).

import { requireLength, requireSizes } from './matmul'
import { exp64, expF32 } from './softmax'

const f = Math.fround
const GELU_TANH_K = f(1.5957691216057308) // 2·√(2/π)
const GELU_TANH_C = f(0.044715)
const SQRT_HALF = 0.7071067811865476
const TWO_OVER_SQRT_PI = 1.1283791670955126
const ONE_OVER_SQRT_PI = 0.5641895835477563
const ERFC_SERIES_LIMIT = 2.0
const ERFC_CF_DEPTH = 40

export function erfc64(z: number): number {
  if (z !== z) return z
  const a = Math.abs(z)
  let c: number
  if (a < ERFC_SERIES_LIMIT) {
    const twoA2 = 2.0 * a * a
    let term = a,
      sum = a
    for (let n = 1; n < 200; n++) {
      term = (term * twoA2) / (2 * n + 1)
      sum += term
      if (term <= sum * 1e-17) break
    }
    c = 1.0 - TWO_OVER_SQRT_PI * exp64(-(a * a)) * sum
  } else {
    let fr = a
    for (let n = ERFC_CF_DEPTH; n >= 1; n--) fr = a + (n * 0.5) / fr
    c = (exp64(-(a * a)) * ONE_OVER_SQRT_PI) / fr
  }
  return z < 0 ? 2.0 - c : c
}

function checkUnary(name: string, x: Float32Array, out: Float32Array, n: number): void {
  requireSizes(name, { n })
  requireLength(name, 'x', x, n)
  requireLength(name, 'out', out, n)
}

/** out[i] = silu(g[i]) · u[i]; out may be g or u. */
export function siluMul(g: Float32Array, u: Float32Array, out: Float32Array, n: number): void {
  checkUnary('silu_mul', g, out, n)
  requireLength('silu_mul', 'u', u, n)
  for (let i = 0; i < n; i++) {
    const gv = g[i]
    out[i] = f(f(gv / f(1 + expF32(-gv))) * u[i])
  }
}

/** GPT-2's gelu_new (tanh approximation); out may be x. */
export function geluTanh(x: Float32Array, out: Float32Array, n: number): void {
  checkUnary('gelu_tanh', x, out, n)
  for (let i = 0; i < n; i++) {
    const v = x[i]
    const z = f(GELU_TANH_K * f(v + f(GELU_TANH_C * f(f(v * v) * v))))
    out[i] = f(v / f(1 + expF32(-z)))
  }
}

/** Exact GELU, 0.5·x·(1 + erf(x/√2)); out may be x. */
export function geluErf(x: Float32Array, out: Float32Array, n: number): void {
  checkUnary('gelu_erf', x, out, n)
  for (let i = 0; i < n; i++) {
    const v = x[i]
    out[i] = f(0.5 * v * erfc64(-(v * SQRT_HALF)))
  }
}

export function relu(x: Float32Array, out: Float32Array, n: number): void {
  checkUnary('relu', x, out, n)
  for (let i = 0; i < n; i++) out[i] = Math.max(x[i], 0)
}

/** a[i] += b[i]. */
export function addInplace(a: Float32Array, b: Float32Array, n: number): void {
  requireSizes('add_inplace', { n })
  requireLength('add_inplace', 'a', a, n)
  requireLength('add_inplace', 'b', b, n)
  for (let i = 0; i < n; i++) a[i] = f(a[i] + b[i])
}

/** x[t·N + j] += b[j] for every row t. */
export function addBiasRows(x: Float32Array, b: Float32Array, T: number, N: number): void {
  requireSizes('add_bias_rows', { T, N })
  requireLength('add_bias_rows', 'x', x, T * N)
  requireLength('add_bias_rows', 'b', b, N)
  for (let t = 0; t < T; t++) {
    for (let j = 0; j < N; j++) x[t * N + j] = f(x[t * N + j] + b[j])
  }
}
