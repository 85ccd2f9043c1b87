// Plain-TS twin of kernels/assembly/backward-linear.ts, bit-exact (Math.fround after every f32 op).
//   matmulNN:    y[t, k] (+)= Σ_n x[t, n] · w[n, k]; s = 0, then s = f32(s + f32(x·w)) for n = 0 … N−1;
//                acc → y = f32(y + s), else y = s.
//   matmulTNAcc: dw[n, k] += Σ_t dy[t, n] · x[t, k] in chunks of TN_CHUNK tokens: per chunk s = 0,
//                s = f32(s + f32(dy·x)) for its t in order, then dw = f32(dw + s).

import { kernelArgError, requireLength, requireSizes } from './matmul'

const f = Math.fround

/** Tokens summed in f32 before they join the running gradient (the kernel's TN_CHUNK). */
export const TN_CHUNK = 256

/** y[T, K] (+)= x[T, N] · w[N, K] for columns [k0, k1) (default: all). */
export function matmulNN(
  x: Float32Array,
  w: Float32Array,
  y: Float32Array,
  T: number,
  N: number,
  K: number,
  k0 = 0,
  k1 = K,
  acc = false,
): void {
  const name = 'matmul_nn'
  requireSizes(name, { T, N, K, k0, k1 })
  if (k1 > K || k0 > k1) throw kernelArgError(name, `column range [${k0}, ${k1}) is not inside [0, ${K})`)
  requireLength(name, 'x', x, T * N)
  requireLength(name, 'w', w, N * K)
  requireLength(name, 'y', y, T * K)
  for (let t = 0; t < T; t++) {
    for (let k = k0; k < k1; k++) {
      let s = 0
      for (let n = 0; n < N; n++) s = f(s + f(x[t * N + n] * w[n * K + k]))
      y[t * K + k] = acc ? f(y[t * K + k] + s) : s
    }
  }
}

/** dw[N, K] += dy[M, N]ᵀ · x[M, K] for rows [n0, n1) (default: all). */
export function matmulTNAcc(
  dy: Float32Array,
  x: Float32Array,
  dw: Float32Array,
  M: number,
  N: number,
  K: number,
  n0 = 0,
  n1 = N,
): void {
  const name = 'matmul_tn_acc'
  requireSizes(name, { M, N, K, n0, n1 })
  if (n1 > N || n0 > n1) throw kernelArgError(name, `row range [${n0}, ${n1}) is not inside [0, ${N})`)
  requireLength(name, 'dy', dy, M * N)
  requireLength(name, 'x', x, M * K)
  requireLength(name, 'dw', dw, N * K)
  for (let t0 = 0; t0 < M; t0 += TN_CHUNK) {
    const t1 = Math.min(M, t0 + TN_CHUNK)
    for (let n = n0; n < n1; n++) {
      for (let k = 0; k < K; k++) {
        let s = 0
        for (let t = t0; t < t1; t++) s = f(s + f(dy[t * N + n] * x[t * K + k]))
        dw[n * K + k] = f(dw[n * K + k] + s)
      }
    }
  }
}
