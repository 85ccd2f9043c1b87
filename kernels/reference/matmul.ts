// Plain-TS twin of kernels/assembly/matmul.ts, bit-exact: Math.fround after every f32 operation and
// the SIMD kernel's accumulation order for each output y[t, n]:
//   K4 = K & ~3; four f32 lane sums a0..a3 start at 0;
//   for k = 0, 4, …, K4 − 4 and lane j: a_j = f32(a_j + f32(x[t, k + j] · w[n, k + j]))
//   s = f32(f32(a0 + a1) + f32(a2 + a3))
//   for k = K4 … K − 1: s = f32(s + f32(x[t, k] · w[n, k]))
//   with bias: s = f32(s + b[n])

import { KernelArgumentError } from './errors'

const f = Math.fround

// Argument checks shared by all the twins: a wrong size must fail loudly, because a typed array read
// past its end gives `undefined` (NaN after arithmetic) instead of an error.

export function kernelArgError(kernel: string, problem: string): KernelArgumentError {
  return new KernelArgumentError(kernel, problem)
}

/** Every size must be a non-negative integer. */
export function requireSizes(kernel: string, sizes: Record<string, number>): void {
  for (const [name, v] of Object.entries(sizes)) {
    if (!Number.isSafeInteger(v) || v < 0) throw kernelArgError(kernel, `${name} = ${v} is not a non-negative integer`)
  }
}

/** The array must hold at least `needed` elements. */
export function requireLength(kernel: string, name: string, a: ArrayLike<number>, needed: number): void {
  if (a.length < needed) throw kernelArgError(kernel, `${name} holds ${a.length} elements, needs ${needed}`)
}

/** One output in the documented order: the dot product of x[xOff, xOff+K) and w[wOff, wOff+K). */
export function dotF32(x: Float32Array, xOff: number, w: Float32Array, wOff: number, K: number): number {
  const K4 = K & ~3
  let a0 = 0,
    a1 = 0,
    a2 = 0,
    a3 = 0
  for (let k = 0; k < K4; k += 4) {
    a0 = f(a0 + f(x[xOff + k] * w[wOff + k]))
    a1 = f(a1 + f(x[xOff + k + 1] * w[wOff + k + 1]))
    a2 = f(a2 + f(x[xOff + k + 2] * w[wOff + k + 2]))
    a3 = f(a3 + f(x[xOff + k + 3] * w[wOff + k + 3]))
  }
  let s = f(f(a0 + a1) + f(a2 + a3))
  for (let k = K4; k < K; k++) s = f(s + f(x[xOff + k] * w[wOff + k]))
  return s
}

function matmulRange(
  name: string,
  x: Float32Array,
  w: Float32Array,
  b: Float32Array | null,
  y: Float32Array,
  T: number,
  K: number,
  N: number,
  n0: number,
  n1: number,
): void {
  requireSizes(name, { T, K, N, n0, n1 })
  if (n1 > N || n0 > n1) throw kernelArgError(name, `output range [${n0}, ${n1}) is not inside [0, ${N})`)
  requireLength(name, 'x', x, T * K)
  requireLength(name, 'w', w, N * K)
  requireLength(name, 'y', y, T * N)
  if (b) requireLength(name, 'b', b, N)
  for (let t = 0; t < T; t++) {
    for (let n = n0; n < n1; n++) {
      const s = dotF32(x, t * K, w, n * K, K)
      y[t * N + n] = b ? f(s + b[n]) : s
    }
  }
}

/** y[t·N + n] = Σ_k x[t·K + k] · w[n·K + k] for t ∈ [0, T), n ∈ [n0, n1) (default: all of N). */
export function matmulNT(
  x: Float32Array,
  w: Float32Array,
  y: Float32Array,
  T: number,
  K: number,
  N: number,
  n0 = 0,
  n1 = N,
): void {
  matmulRange('matmul_nt', x, w, null, y, T, K, N, n0, n1)
}

/** As matmulNT, plus b[n] added last. */
export function matmulNTBias(
  x: Float32Array,
  w: Float32Array,
  b: Float32Array,
  y: Float32Array,
  T: number,
  K: number,
  N: number,
  n0 = 0,
  n1 = N,
): void {
  matmulRange('matmul_nt_bias', x, w, b, y, T, K, N, n0, n1)
}
