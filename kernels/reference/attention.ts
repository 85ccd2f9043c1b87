// Plain-TS twin of kernels/assembly/attention.ts, bit-exact. For each head h and query i:
//   scale = f32(log2(e) / sqrt(headDim))   (scores in log2 units)
//   s_j = f32(dotF32(q_i, k_j) · scale) for j = 0…i (dotF32: matmul's four-lane order)
//   m = max_j s_j (plain `>` scan from j = 0)
//   p_j = softmaxExp2F32(f32(s_j − m)) (2^x, 0 below −92);  S = Σ_j p_j in f64 from j = 0;  inv = f32(1 / S)
//   out_i[d] = f32(acc_d · inv), acc_d = Σ_j f32(p_j · v_j[d]) accumulated in f32 from j = 0
// Query head h reads KV head h / (nHeads / nKV).

import { dotF32, kernelArgError, requireLength, requireSizes } from './matmul'
import { softmaxExp2F32 } from './softmax'

const f = Math.fround

/** Queries the SIMD kernel runs together, one f32x4 lane each; its scratch holds their scores side by side. */
export const ATTENTION_QUERY_GROUP = 4

/** f32 values of scratch one attention_causal call needs (the twin itself uses only the first T). */
export function attentionScratch(T: number): number {
  return ATTENTION_QUERY_GROUP * T
}

/**
 * Causal attention for heads [h0, h1) (default: all). q and out are [T, nHeads·headDim], k and v
 * [T, nKV·headDim]; scratch must hold at least attentionScratch(T) values, as the kernel's does, so a
 * caller sized for one is sized for the other.
 */
export function attentionCausal(
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  out: Float32Array,
  scratch: Float32Array,
  T: number,
  nHeads: number,
  nKV: number,
  headDim: number,
  h0 = 0,
  h1 = nHeads,
): void {
  const name = 'attention_causal'
  requireSizes(name, { T, nHeads, nKV, headDim, h0, h1 })
  if (nKV === 0 || nHeads % nKV !== 0)
    throw kernelArgError(name, `${nHeads} query heads cannot share ${nKV} KV heads evenly`)
  if (headDim === 0) throw kernelArgError(name, 'headDim = 0')
  if (h1 > nHeads || h0 > h1) throw kernelArgError(name, `head range [${h0}, ${h1}) is not inside [0, ${nHeads})`)
  requireLength(name, 'q', q, T * nHeads * headDim)
  requireLength(name, 'out', out, T * nHeads * headDim)
  requireLength(name, 'k', k, T * nKV * headDim)
  requireLength(name, 'v', v, T * nKV * headDim)
  requireLength(name, 'scratch', scratch, attentionScratch(T))

  const group = nHeads / nKV
  const scale = f(Math.LOG2E / Math.sqrt(headDim))
  const qRow = nHeads * headDim,
    kvRow = nKV * headDim
  for (let h = h0; h < h1; h++) {
    const kvOff = Math.floor(h / group) * headDim
    for (let i = 0; i < T; i++) {
      const qOff = i * qRow + h * headDim
      let m = -Infinity
      for (let j = 0; j <= i; j++) {
        const s = f(dotF32(q, qOff, k, j * kvRow + kvOff, headDim) * scale)
        scratch[j] = s
        if (s > m) m = s
      }
      let sum = 0
      for (let j = 0; j <= i; j++) {
        const p = softmaxExp2F32(f(scratch[j] - m))
        scratch[j] = p
        sum += p
      }
      const inv = f(1.0 / sum)
      for (let d = 0; d < headDim; d++) {
        let acc = 0
        for (let j = 0; j <= i; j++) acc = f(acc + f(scratch[j] * v[j * kvRow + kvOff + d]))
        out[qOff + d] = f(acc * inv)
      }
    }
  }
}
