// Plain-TS twin of kernels/assembly/backward-attention.ts, bit-exact. For query heads of KV heads
// [g0, g1), queries i, keys j ≤ i:
//   s_j = f32(dotF32(q_i, k_j) · scale2) with scale2 = f32(log2(e)/√headDim) (log2 units), m = max,
//   e_j = softmaxExp2F32(f32(s_j − m)), S = Σ e_j (f64),
//   inv = f32(1/S), p_j = f32(e_j · inv); dP_j = dotF32(dout_i, v_j); D = f32(Σ f64(p_j)·f64(dP_j));
//   g_j = f32(f32(p_j · f32(dP_j − D)) · scale) with scale = f32(1/√headDim);
//   dq_i = Σ_j f32(g_j · k_j) (f32, from j = 0, written); dk_j += f32(g_j · q_i); dv_j += f32(p_j · dout_i).

import { dotF32, kernelArgError, requireLength, requireSizes } from './matmul'
import { softmaxExp2F32 } from './softmax'

const f = Math.fround

/** Queries per block in the SIMD kernel (its QBLOCK); the twin needs no such blocking. */
export const ATTENTION_BACKWARD_QBLOCK = 64

/** f32 values of scratch one attention_causal_backward call needs (the twin needs only 2·T). */
export function attentionBackwardScratch(T: number): number {
  return 2 * Math.min(T, ATTENTION_BACKWARD_QBLOCK) * T
}

export function attentionCausalBackward(
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  dout: Float32Array,
  dq: Float32Array,
  dk: Float32Array,
  dv: Float32Array,
  scratch: Float32Array,
  T: number,
  nHeads: number,
  nKV: number,
  headDim: number,
  g0 = 0,
  g1 = nKV,
): void {
  const name = 'attention_causal_backward'
  requireSizes(name, { T, nHeads, nKV, headDim, g0, g1 })
  if (nKV === 0 || nHeads % nKV !== 0)
    throw kernelArgError(name, `${nHeads} query heads cannot share ${nKV} KV heads evenly`)
  if (headDim === 0) throw kernelArgError(name, 'headDim = 0')
  if (g1 > nKV || g0 > g1) throw kernelArgError(name, `KV head range [${g0}, ${g1}) is not inside [0, ${nKV})`)
  const qLen = T * nHeads * headDim,
    kvLen = T * nKV * headDim
  for (const [label, a, n] of [
    ['q', q, qLen],
    ['dout', dout, qLen],
    ['dq', dq, qLen],
    ['k', k, kvLen],
    ['v', v, kvLen],
    ['dk', dk, kvLen],
    ['dv', dv, kvLen],
    ['scratch', scratch, 2 * T],
  ] as const)
    requireLength(name, label, a, n)
  const group = nHeads / nKV
  const scale = f(1.0 / Math.sqrt(headDim))
  const scale2 = f(Math.LOG2E / Math.sqrt(headDim))
  const qRow = nHeads * headDim,
    kvRow = nKV * headDim
  const p = scratch.subarray(0, T),
    dP = scratch.subarray(T, 2 * T)
  for (let h = g0 * group; h < g1 * group; h++) {
    const kvOff = Math.floor(h / group) * headDim
    for (let i = 0; i < T; i++) {
      const qOff = i * qRow + h * headDim
      let m = -Infinity
      for (let j = 0; j <= i; j++) {
        const s = f(dotF32(q, qOff, k, j * kvRow + kvOff, headDim) * scale2)
        p[j] = s
        if (s > m) m = s
      }
      let sum = 0
      for (let j = 0; j <= i; j++) {
        p[j] = softmaxExp2F32(f(p[j] - m))
        sum += p[j]
      }
      const inv = f(1.0 / sum)
      let D = 0
      for (let j = 0; j <= i; j++) {
        p[j] = f(p[j] * inv)
        dP[j] = dotF32(dout, qOff, v, j * kvRow + kvOff, headDim)
        D += p[j] * dP[j]
      }
      const D32 = f(D)
      for (let d = 0; d < headDim; d++) dq[qOff + d] = 0
      for (let j = 0; j <= i; j++) {
        const g = f(f(p[j] * f(dP[j] - D32)) * scale)
        const kv = j * kvRow + kvOff
        for (let d = 0; d < headDim; d++) {
          dq[qOff + d] = f(dq[qOff + d] + f(g * k[kv + d]))
          dk[kv + d] = f(dk[kv + d] + f(g * q[qOff + d]))
          dv[kv + d] = f(dv[kv + d] + f(p[j] * dout[qOff + d]))
        }
      }
    }
  }
}
