// The relaxed-SIMD build (kernels/build/kernels-relaxed.wasm, KernelVariant 'fused'): matmul_nt with fused
// multiply-adds, against the bit-exact TS twin within a stated tolerance, and against an f64 product.
//
// Stated tolerance. Each output sums K products in four lanes of K/4 steps each, then the lanes pairwise,
// then the K mod 4 tail. The plain build rounds every product and every sum (twice per step); the fused build
// rounds once per step. Both are therefore within γ(K/4 + 3)·Σ|x·w| of the exact sum (γ(n) ≈ n·2⁻²⁴), so
//   |fused − twin| ≤ 2 · (K/4 + 3) · 2⁻²⁴ · Σ_k |x_k · w_k|   for every output.
// On a CPU with FMA (x64 with the fma flag) the fused build must differ from the twin somewhere (else it is
// not fused); elsewhere relaxed_madd may be the same mul + add and equality is allowed.
// Needs the kernel build: `npm run build:kernels`.

import { beforeAll, describe, expect, it } from 'vitest'
import type { KernelExports } from '../host/exports'
import { matmulNT, matmulNTBias } from '../reference/matmul'
import { cpuHasFma, loadFusedKernels, mixedValues as values, putAt } from '../testing/fused-build'

let fused: KernelExports | null = null
let memory: WebAssembly.Memory

beforeAll(async () => {
  // A runtime without relaxed SIMD falls back to the exact build; the tests below then have nothing to test.
  const build = await loadFusedKernels()
  if (build) ({ kernels: fused, memory } = build)
})

const put = (at: number, data: Float32Array): number => putAt(memory, at, data)

describe('matmul_nt, relaxed-SIMD build (fused multiply-add)', () => {
  it('stays within the stated tolerance of the twin, with and without bias, for every tile shape', (ctx) => {
    if (!fused) return ctx.skip()
    // T = 7 and N = 13 reach the 4×2, 4×1, 1×4 and 1×1 tiles; K = 515 leaves a scalar tail of 3.
    for (const [T, K, N] of [
      [7, 515, 13],
      [4, 64, 8],
      [1, 2048, 9],
      [9, 1024, 33],
    ]) {
      const x = values(T * K, 1 + K),
        w = values(N * K, 2 + N),
        b = values(N, 3)
      let at = fused.heap_base() + 64
      const px = at
      at = put(at, x)
      const pw = at
      at = put(at, w)
      const pb = at
      at = put(at, b)
      const py = at,
        pyb = at + T * N * 4 + 16
      fused.matmul_nt(px, pw, py, T, K, N, 0, N)
      fused.matmul_nt_bias(px, pw, pb, pyb, T, K, N, 0, N)
      const got = new Float32Array(memory.buffer, py, T * N).slice()
      const gotBias = new Float32Array(memory.buffer, pyb, T * N).slice()
      const twin = new Float32Array(T * N),
        twinBias = new Float32Array(T * N)
      matmulNT(x, w, twin, T, K, N)
      matmulNTBias(x, w, b, twinBias, T, K, N)
      let differing = 0
      for (let t = 0; t < T; t++) {
        for (let n = 0; n < N; n++) {
          let absSum = 0,
            exact = 0
          for (let kk = 0; kk < K; kk++) {
            absSum += Math.abs(x[t * K + kk] * w[n * K + kk])
            exact += x[t * K + kk] * w[n * K + kk]
          }
          const bound = 2 * (K / 4 + 3) * 2 ** -24 * absSum
          const i = t * N + n
          expect(Math.abs(got[i] - twin[i]), `y[${t}, ${n}] (T ${T}, K ${K}, N ${N})`).toBeLessThanOrEqual(bound)
          // The bias is added last, in f32, in both builds: one more rounding of the sum with b.
          const biasBound = bound + 2 ** -23 * (Math.abs(exact) + Math.abs(b[n]) + bound)
          expect(Math.abs(gotBias[i] - twinBias[i])).toBeLessThanOrEqual(biasBound)
          // Against the exact (f64) product, the fused result obeys the same bound.
          expect(Math.abs(got[i] - exact)).toBeLessThanOrEqual(bound)
          if (got[i] !== twin[i]) differing++
        }
      }
      if (cpuHasFma && K >= 64) expect(differing, `fused outputs differing from the twin (K ${K})`).toBeGreaterThan(0)
    }
  })
})
