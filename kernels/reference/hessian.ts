// Plain-TS twin of kernels/assembly/hessian.ts, bit-exact. Each element H[i][j] (j ≥ i), per chunk of
// HESSIAN_CHUNK_TOKENS tokens from t = 0: s = 0 (f32); for t in the chunk: s = f32(s + f32(x[t][i]·x[t][j]));
// then H = H + s (f64).

import { kernelArgError, requireLength, requireSizes } from './matmul'

/** Tokens per f32 chunk of the Hessian (the kernel's hessian_chunk_tokens(), held equal by the tests). */
export const HESSIAN_CHUNK_TOKENS = 256

/**
 * H[i·K + j] += Σ_t x[t·K + i]·x[t·K + j] for i ∈ [i0, i1), j ∈ [i, K), summed in f32 per chunk of
 * HESSIAN_CHUNK_TOKENS tokens and in f64 across chunks. ACCUMULATES into the upper triangle of H; nothing
 * else is touched.
 */
export function hessianAccumulate(x: Float32Array, H: Float64Array, M: number, K: number, i0 = 0, i1 = K): void {
  requireSizes('hessian_accumulate', { M, K, i0, i1 })
  if (i1 > K || i0 > i1) throw kernelArgError('hessian_accumulate', `row range [${i0}, ${i1}) is not inside [0, ${K})`)
  requireLength('hessian_accumulate', 'x', x, M * K)
  requireLength('hessian_accumulate', 'H', H, K * K)
  // One row's f32 sums over a chunk. A Float32Array store of the f64 sum of two f32 values is the
  // correctly rounded f32 sum (f64 holds 2·24 + 2 bits), so acc[j] += f32 product is the kernel's f32 add.
  const acc = new Float32Array(K)
  for (let t0 = 0; t0 < M; t0 += HESSIAN_CHUNK_TOKENS) {
    const t1 = Math.min(M, t0 + HESSIAN_CHUNK_TOKENS)
    for (let i = i0; i < i1; i++) {
      acc.fill(0, i)
      for (let t = t0; t < t1; t++) {
        const row = t * K
        const xi = x[row + i]
        for (let j = i; j < K; j++) acc[j] += Math.fround(xi * x[row + j])
      }
      const base = i * K
      for (let j = i; j < K; j++) H[base + j] += acc[j]
    }
  }
}
