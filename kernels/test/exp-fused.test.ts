// The relaxed-SIMD build (KernelVariant 'fused') evaluates the exponentials' polynomials with fused
// multiply-adds: softmaxExp2f32x4 (attention, log_softmax_nll) and expf32x4 (SiLU, GELU). Stated tolerance:
// a Horner step with one rounding is never worse than with two, so each build's 2^x stays within 1.2 ulp of
// the exact value (softmax.ts), and the fused build's terms within 2.4 ulp (≤ 2⁻²¹ relative) of the twin's.
// SiLU, g/(1 + e^−g)·u, carries e^−g's difference into the denominator, damped by e^−g/(1 + e^−g) ≤ 1,
// and rounds the division and the product alike: within 2⁻²¹ + 4·2⁻²⁴ of the twin, relative.

import { beforeAll, describe, expect, it } from 'vitest'
import type { KernelExports } from '../host/exports'
import { siluMul } from '../reference/activation'
import { softmaxExp2F32 } from '../reference/softmax'
import { cpuHasFma, loadFusedKernels, putAt } from '../testing/fused-build'

let fused: KernelExports | null = null
let memory: WebAssembly.Memory

beforeAll(async () => {
  const build = await loadFusedKernels()
  if (build) ({ kernels: fused, memory } = build)
})

/** n values spread evenly over [lo, hi] (f32), not a multiple of 4, so the scalar tail runs too. */
function sweep(lo: number, hi: number, n: number): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => lo + ((hi - lo) * i) / (n - 1))
}

describe('the exponentials, relaxed-SIMD build (fused multiply-add)', () => {
  it('softmax_exp2 stays within 1.2 ulp of 2^x and 2^−21 of the twin', (ctx) => {
    if (!fused) return ctx.skip()
    const x = sweep(-91.9, 0, 20_003)
    const px = fused.heap_base() + 64
    const po = putAt(memory, px, x)
    fused.softmax_exp2(px, po, x.length)
    const got = new Float32Array(memory.buffer, po, x.length)
    let differing = 0
    for (let i = 0; i < x.length; i++) {
      const exact = 2 ** x[i]
      const ulp = 2 ** (Math.floor(Math.log2(exact)) - 23)
      expect(Math.abs(got[i] - exact) / ulp, `x = ${x[i]}`).toBeLessThanOrEqual(1.2)
      const twin = softmaxExp2F32(x[i])
      expect(Math.abs(got[i] - twin)).toBeLessThanOrEqual(2 ** -21 * twin)
      if (got[i] !== twin) differing++
    }
    if (cpuHasFma) expect(differing, 'fused terms differing from the twin').toBeGreaterThan(0)
  })

  it('silu_mul stays within 2^−21 + 4·2^−24 of the twin, relative', (ctx) => {
    if (!fused) return ctx.skip()
    const g = sweep(-30, 30, 10_001),
      u = sweep(-2, 3, 10_001)
    let at = fused.heap_base() + 64
    const pg = at
    at = putAt(memory, at, g)
    const pu = at
    at = putAt(memory, at, u)
    fused.silu_mul(pg, pu, at, g.length)
    const got = new Float32Array(memory.buffer, at, g.length)
    const twin = new Float32Array(g.length)
    siluMul(g, u, twin, g.length)
    let differing = 0
    for (let i = 0; i < g.length; i++) {
      expect(Math.abs(got[i] - twin[i]), `g = ${g[i]}`).toBeLessThanOrEqual(
        (2 ** -21 + 4 * 2 ** -24) * Math.abs(twin[i]),
      )
      if (got[i] !== twin[i]) differing++
    }
    if (cpuHasFma) expect(differing, 'fused SiLU values differing from the twin').toBeGreaterThan(0)
  })
})
