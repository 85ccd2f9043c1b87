// The cancel helpers and the job's cancel scope: a kernel call deep inside a job, started with no signal
// passed to it, is stopped when the job is cancelled; main-thread loops and unstoppable waits give way.

import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { WhittleError } from '../errors'
import { WorkerPool } from '../pool/worker-pool'
import { scaled } from '../testing/time-factor'
import { cancellationPoint, currentCancelSignal, throwIfCancelled, untilCancelled, withCancelScope } from './cancel'
import { JobRegistry } from './job-registry'

let pool: WorkerPool
beforeAll(async () => {
  pool = await WorkerPool.create({ threads: 2 })
})
afterAll(async () => {
  await pool?.close()
})

const code = (e: unknown): string | undefined => (e instanceof WhittleError ? e.code : undefined)
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

describe('cancel helpers', () => {
  it('throwIfCancelled throws the typed cancelled error only once the signal fired', () => {
    const c = new AbortController()
    expect(() => throwIfCancelled(c.signal)).not.toThrow()
    expect(() => throwIfCancelled(undefined)).not.toThrow()
    c.abort()
    let e: unknown
    try {
      throwIfCancelled(c.signal)
    } catch (err) {
      e = err
    }
    expect(code(e)).toBe('cancelled')
  })

  it('the scope follows the work through awaits and is absent outside', async () => {
    const c = new AbortController()
    expect(currentCancelSignal()).toBeUndefined()
    const seen = await withCancelScope(c.signal, async () => {
      await sleep(1)
      return currentCancelSignal()
    })
    expect(seen).toBe(c.signal)
    expect(currentCancelSignal()).toBeUndefined()
  })

  it('cancellationPoint lets a cancel into a busy main-thread loop', async () => {
    const c = new AbortController()
    setTimeout(() => c.abort(), 100)
    const t0 = performance.now()
    let spins = 0
    const e = await withCancelScope(c.signal, async () => {
      for (;;) {
        const until = performance.now() + 5
        while (performance.now() < until) spins++ // 5 ms of work that never awaits by itself
        await cancellationPoint()
      }
    }).catch((err: unknown) => err)
    expect(code(e)).toBe('cancelled')
    expect(spins).toBeGreaterThan(0)
    expect(performance.now() - t0).toBeLessThan(scaled(1000))
  })

  it('untilCancelled stops waiting for work that cannot be stopped', async () => {
    const c = new AbortController()
    let finish!: (v: number) => void
    const work = new Promise<number>((r) => {
      finish = r
    })
    const waiting = untilCancelled(work, c.signal)
    c.abort()
    expect(code(await waiting.catch((e: unknown) => e))).toBe('cancelled')
    finish(1)
    expect(await untilCancelled(Promise.resolve(2), new AbortController().signal)).toBe(2)
  })
})

describe('a job cancelled through the registry', () => {
  it('stops a long kernel call the runner started without passing a signal, within 1 s', async () => {
    const n = 4096
    const A = pool.arena.alloc(n * n * 8)
    const a = pool.arena.f64(A, 0, n * n)
    a.fill(0)
    for (let i = 0; i < n; i++) a[i * n + i] = 2
    const jobs = new JobRegistry()
    let started = false
    const { id, done } = jobs.start('scan', async () => {
      started = true
      await pool.run([['cholesky_lower', A.ptr, n]]) // seconds of work in one call
      return { kind: 'scan', result: { modelId: 'm', k: 6, cells: [], seconds: 0, bytes: 0 } }
    })
    await sleep(300)
    expect(started).toBe(true)
    const t0 = performance.now()
    jobs.cancel(id)
    const end = await done
    expect(end.state).toBe('cancelled')
    expect(performance.now() - t0).toBeLessThan(scaled(1000))
    pool.arena.release(A)
    // The pool went on: a small factorization gives its known answer (L = [[2, 0], [1, 3]]).
    const r = pool.arena.alloc(32)
    pool.arena.f64(r, 0, 4).set([4, 2, 2, 10])
    expect(await pool.call([['cholesky_lower', r.ptr, 2]])).toEqual([0])
    expect(Array.from(pool.arena.f64(r, 0, 4))).toEqual([2, 0, 1, 3])
    pool.arena.release(r)
  })
})
