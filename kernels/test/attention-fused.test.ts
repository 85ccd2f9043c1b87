// The relaxed-SIMD build (KernelVariant 'fused'): attention_causal with fused multiply-adds in its scores
// (q·k), its terms' polynomial and its weighted sums (Σ p·v), against the bit-exact TS twin within a stated tolerance.
//
// Stated tolerance, for output d of query i (scores in log2 units, s_j = dot(q_i, k_j)·scale):
// - each score's dot is within (D/4 + 3)·2⁻²⁴·Σ|q·k| of exact in either build (as matmul's), and the scale
//   multiply rounds once more, so |Δs_j| ≤ E_j = scale·2·(D/4 + 3)·2⁻²⁴·Σ_d |q_d·k_jd| + 2⁻²³·|s_j|;
// - the max moves by at most E = max_j E_j, so each p_j = 2^(s_j − m), whose polynomial (fused too in this
//   build) is within 1.2 ulp in each, moves by a factor within δ = 2·ln 2·E + 2⁻²¹ of the twin's, and S too;
// - the weighted sum of i + 1 terms is within (i + 2)·2⁻²⁴·Σ p_j·|v_jd| of exact in either build, and the
//   final multiply by 1/S rounds twice more;
// so |fused − twin| ≤ (2δ + 2·(i + 4)·2⁻²⁴)·Σ_j p_j·|v_jd| / S, first order. The test allows twice that for
// the second-order terms. Head dims 8 (the query-group path) and 36 (32-lane blocks and a 4-lane one).

import { beforeAll, describe, expect, it } from 'vitest'
import type { KernelExports } from '../host/exports'
import { attentionCausal, attentionScratch } from '../reference/attention'
import { cpuHasFma, loadFusedKernels, mixedValues, putAt } from '../testing/fused-build'

let fused: KernelExports | null = null
let memory: WebAssembly.Memory

beforeAll(async () => {
  const build = await loadFusedKernels()
  if (build) ({ kernels: fused, memory } = build)
})

describe('attention_causal, relaxed-SIMD build (fused multiply-add)', () => {
  for (const D of [8, 36])
    it(`stays within the stated tolerance of the twin (head dim ${D})`, (ctx) => {
      if (!fused) return ctx.skip()
      const T = 37,
        nHeads = 4,
        nKV = 2,
        qRow = nHeads * D,
        kvRow = nKV * D
      const q = mixedValues(T * qRow, 11 + D),
        k = mixedValues(T * kvRow, 12 + D),
        v = mixedValues(T * kvRow, 13 + D)
      let at = fused.heap_base() + 64
      const pq = at
      at = putAt(memory, at, q)
      const pk = at
      at = putAt(memory, at, k)
      const pv = at
      at = putAt(memory, at, v)
      const po = at,
        ps = po + T * qRow * 4 + 16
      fused.attention_causal(pq, pk, pv, po, ps, T, nHeads, nKV, D, 0, nHeads)
      const got = new Float32Array(memory.buffer, po, T * qRow).slice()
      const twin = new Float32Array(T * qRow)
      attentionCausal(q, k, v, twin, new Float32Array(attentionScratch(T)), T, nHeads, nKV, D)

      const scale = Math.fround(Math.LOG2E / Math.sqrt(D))
      let differing = 0
      for (let h = 0; h < nHeads; h++) {
        const kvh = Math.floor(h / (nHeads / nKV))
        for (let i = 0; i < T; i++) {
          const s: number[] = [],
            e: number[] = []
          for (let j = 0; j <= i; j++) {
            let dot = 0,
              abs = 0
            for (let d = 0; d < D; d++) {
              const prod = q[i * qRow + h * D + d] * k[j * kvRow + kvh * D + d]
              dot += prod
              abs += Math.abs(prod)
            }
            s.push(dot * scale)
            e.push(scale * 2 * (D / 4 + 3) * 2 ** -24 * abs + 2 ** -23 * Math.abs(dot * scale))
          }
          const m = Math.max(...s)
          const p = s.map((x) => 2 ** (x - m))
          const S = p.reduce((a, b) => a + b, 0)
          const delta = 2 * Math.LN2 * Math.max(...e) + 2 ** -21
          for (let d = 0; d < D; d++) {
            let weight = 0
            for (let j = 0; j <= i; j++) weight += p[j] * Math.abs(v[j * kvRow + kvh * D + d])
            const bound = 2 * (2 * delta + 2 * (i + 4) * 2 ** -24) * (weight / S)
            const at = i * qRow + h * D + d
            expect(Math.abs(got[at] - twin[at]), `head ${h}, query ${i}, d ${d}`).toBeLessThanOrEqual(bound)
            if (got[at] !== twin[at]) differing++
          }
        }
      }
      if (cpuHasFma) expect(differing, 'fused outputs differing from the twin').toBeGreaterThan(0)
    })
})
