// Cancel lands within a second in GPTQ on the TinyLlama-1.1B down_proj shape (2048 × 5632): both in the
// inverse Cholesky of its 5632² Hessian (tens of seconds of kernel calls across the workers) and in the
// column loop.
// The work is stopped, not finished: each case runs for well under a second of compute.

import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { WhittleError } from '../../errors'
import { withCancelScope } from '../../jobs/cancel'
import { WorkerPool } from '../../pool/worker-pool'
import { PRESETS } from '../../synthetic/presets'
import { scaled } from '../../testing/time-factor'
import { correlatedInputs, gram } from '../testing/synthetic-layer'
import { gptq, gptqQuantizePlanned, planHessian, planHessianAsync, type GptqHessianPlan, type GptqParams } from './gptq'

const { hiddenSize: ROWS, intermediateSize: COLS } = PRESETS['tinyllama-1.1b']
const params: GptqParams = {
  bits: 4,
  groupSize: 128,
  sym: false,
  damp: 0.01,
  blockSize: 128,
  actOrder: false,
  staticGroups: false,
  scaleDtype: 'f16',
}

/** A weight of the given shape with values spread over (−0.5, 0.5); cheap to make at this size. */
function weight(rows: number, cols: number, seed: number): Float32Array {
  const w = new Float32Array(rows * cols)
  for (let i = 0; i < w.length; i++) w[i] = ((Math.imul(i + seed, 2654435761) >>> 0) % 10007) / 10007 - 0.5
  return w
}

let pool: WorkerPool
beforeAll(async () => {
  pool = await WorkerPool.create({ threads: 2 })
})
afterAll(async () => {
  await pool?.close()
})

/** Runs `start` in a job's cancel scope, cancels after `afterMs`, and returns the error and how long after the cancel it came. */
async function cancelAfter(
  afterMs: number,
  start: () => Promise<unknown>,
): Promise<{ error: unknown; latencyMs: number }> {
  const job = new AbortController()
  const running = withCancelScope(job.signal, start)
  let cancelledAt = 0
  const timer = setTimeout(() => {
    cancelledAt = performance.now()
    job.abort()
  }, afterMs)
  const error = await running.then(
    () => null,
    (e: unknown) => e,
  )
  clearTimeout(timer)
  return { error, latencyMs: performance.now() - cancelledAt }
}

function expectCancelledWithin(r: { error: unknown; latencyMs: number }, ms: number): void {
  expect(r.error, 'the job finished instead of being cancelled').toBeInstanceOf(WhittleError)
  expect((r.error as WhittleError).code).toBe('cancelled')
  expect(r.latencyMs).toBeLessThan(ms)
}

describe('GPTQ cancel on the 1.1B shape', () => {
  it(`stops the ${COLS}² inverse Cholesky within 1 s, releases its kernel memory, and the pool goes on`, async () => {
    const H = new Float64Array(COLS * COLS)
    for (let i = 0; i < COLS; i++) H[i * COLS + i] = 1 + (i % 7) // SPD; the factorization costs n³/3 whatever the values
    const W = weight(ROWS, COLS, 5)
    const live = pool.arena.liveBytes
    const r = await cancelAfter(1000, () =>
      gptq.compressGroup({
        layer: 0,
        group: 'down',
        input: {
          channels: COLS,
          tokens: 0,
          windows: 0,
          absmax: new Float32Array(0),
          sumAbs: new Float64Array(0),
          sumSq: new Float64Array(0),
          hessian: H,
        },
        pool,
        linears: [
          {
            name: 'model.layers.0.mlp.down_proj.weight',
            role: 'down',
            layer: 0,
            rows: ROWS,
            cols: COLS,
            weight: W,
            params,
          },
        ],
      }),
    )
    expectCancelledWithin(r, scaled(1000))
    expect(pool.arena.liveBytes).toBe(live)

    // The pool still factors correctly: the worker path equals the TS reference path bit for bit.
    const K = 96
    const Hs = gram(correlatedInputs(300, K, 3), 300, K)
    const onWorker = await planHessianAsync(Hs, K, { damp: 0.01, actOrder: true }, pool)
    const reference = planHessian(Hs, K, { damp: 0.01, actOrder: true })
    expect(Array.from(onWorker.perm)).toEqual(Array.from(reference.perm))
    expect(Buffer.from(onWorker.U.buffer).equals(Buffer.from(reference.U.buffer))).toBe(true)
  })

  it('stops the column loop (the blocks and the lazy updates on the workers) within 1 s', async () => {
    // A valid plan without the 30 s factorization: U of H = I is I.
    const U = new Float32Array(COLS * COLS)
    for (let i = 0; i < COLS; i++) U[i * COLS + i] = 1
    const plan: GptqHessianPlan = {
      cols: COLS,
      dead: new Int32Array(0),
      perm: Int32Array.from({ length: COLS }, (_, i) => i),
      U,
    }
    const W = weight(ROWS, COLS, 9)
    const live = pool.arena.liveBytes
    const r = await cancelAfter(700, () => gptqQuantizePlanned(W, ROWS, COLS, plan, params, pool))
    expectCancelledWithin(r, scaled(1000))
    expect(pool.arena.liveBytes).toBe(live)
  })
})
