// GPTQ's Hessian plan on the workers (planHessianAsync: the damped, permuted H written straight into kernel
// memory, the factor back as f32; issue #15) against the definition written out here: dead inputs get
// H_ii = 1, act-order sorts by descending diagonal, damp · mean(diag) is added, and U is the upper Cholesky
// factor of the inverse (cholesky.ts, the kernels' TS twin), rounded to f32 — bit for bit.

import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { WorkerPool } from '../../pool/worker-pool'
import { inverseCholeskyUpper } from '../linalg/cholesky'
import { correlatedInputs, gram } from '../testing/synthetic-layer'
import { planHessian, planHessianAsync } from './gptq'

/** The matrix GPTQ factors, straight from the reference's steps. */
function dampedByDefinition(H: Float64Array, K: number, damp: number, actOrder: boolean): Float64Array {
  const M = H.slice()
  for (let i = 0; i < K; i++) if (M[i * K + i] === 0) M[i * K + i] = 1
  const order = Array.from({ length: K }, (_, i) => i)
  if (actOrder) order.sort((a, b) => M[b * K + b] - M[a * K + a] || a - b)
  const P = new Float64Array(K * K)
  for (let i = 0; i < K; i++) for (let j = 0; j < K; j++) P[i * K + j] = M[order[i] * K + order[j]]
  let sum = 0
  for (let i = 0; i < K; i++) sum += P[i * K + i]
  for (let i = 0; i < K; i++) P[i * K + i] += (damp * sum) / K
  return P
}

describe('planHessianAsync', () => {
  let pool: WorkerPool
  beforeAll(async () => {
    pool = await WorkerPool.create({ threads: 2 })
  })
  afterAll(() => pool?.close())

  it.each([
    [false, 0.01],
    [true, 0.01],
    [true, 0.1],
  ])(
    'act-order %s, damp %f, two dead inputs: the factor of the damped, permuted H, bit for bit',
    async (actOrder, damp) => {
      const K = 200
      const H = gram(correlatedInputs(400, K, 5), 400, K)
      for (const dead of [3, 150]) for (let j = 0; j < K; j++) H[dead * K + j] = H[j * K + dead] = 0
      const before = H.slice()
      const live = pool.arena.liveBytes

      const plan = await planHessianAsync(H, K, { damp, actOrder }, pool)

      expect(pool.arena.liveBytes).toBe(live)
      expect(H).toEqual(before)
      expect(Array.from(plan.dead)).toEqual([3, 150])
      const want = Float32Array.from(inverseCholeskyUpper(dampedByDefinition(H, K, damp, actOrder), K))
      expect(Buffer.from(plan.U.buffer).equals(Buffer.from(want.buffer))).toBe(true)
      if (actOrder) expect(Array.from(plan.perm)).not.toEqual(Array.from({ length: K }, (_, i) => i))
      const reference = planHessian(H, K, { damp, actOrder })
      expect(Array.from(plan.perm)).toEqual(Array.from(reference.perm))
      expect(Buffer.from(plan.U.buffer).equals(Buffer.from(reference.U.buffer))).toBe(true)
    },
  )
})
