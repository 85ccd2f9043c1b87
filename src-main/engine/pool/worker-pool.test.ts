// The worker pool under faults and cancel: a trap, an uncaught exception, an exit and an outside kill
// each fail the task with a typed error naming the kernel and the fault, the rest of the same work
// stops with it, and the pool runs the next task correctly on fresh workers. Cancel stops even a long
// single kernel call within a second.

import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Worker } from 'node:worker_threads'
import { WhittleError } from '../errors'
import { withCancelScope } from '../jobs/cancel'
import { scaled } from '../testing/time-factor'
import { WorkerPool, type KernelCall } from './worker-pool'

const FAULT_WORKER = new URL('./testing/fault-worker.mjs', import.meta.url).pathname
const THREADS = 2
/** Long enough that one cholesky_lower call on it runs for seconds (about n³/3 multiply-adds). */
const LONG_N = 4096

let pool: WorkerPool
beforeAll(async () => {
  pool = await WorkerPool.create({ threads: THREADS, workerFile: FAULT_WORKER })
})
afterAll(async () => {
  await pool?.close()
})

async function rejection(p: Promise<unknown>): Promise<WhittleError> {
  const e = await p.then(
    () => null,
    (err: unknown) => err,
  )
  expect(e, 'expected the task to fail').toBeInstanceOf(WhittleError)
  return e as WhittleError
}

/**
 * A real computation checked independently: BF16 is the top half of an f32, so f32 values whose low 16
 * bits are zero must come back bit for bit.
 */
async function expectPoolWorks(p: WorkerPool): Promise<void> {
  const n = 4099
  const want = new Float32Array(n)
  const bits = new Uint32Array(want.buffer)
  for (let i = 0; i < n; i++) bits[i] = (Math.imul(i + 1, 2654435761) & 0x7f7f0000) >>> 0
  const src = p.arena.alloc(n * 2),
    dst = p.arena.alloc(n * 4)
  try {
    const halves = new Uint16Array(p.memory.buffer, src.ptr, n)
    for (let i = 0; i < n; i++) halves[i] = bits[i] >>> 16
    // One task per worker, so a stale or broken worker could not hide.
    const step = Math.ceil(n / THREADS)
    await Promise.all(
      Array.from({ length: THREADS }, (_, k) => {
        const a = k * step,
          b = Math.min(n, a + step)
        return p.run([['convert_bf16', src.ptr + a * 2, dst.ptr + a * 4, b - a]])
      }),
    )
    expect(Array.from(new Uint32Array(p.memory.buffer, dst.ptr, n))).toEqual(Array.from(bits))
  } finally {
    p.arena.release(src)
    p.arena.release(dst)
  }
  expect(p.workerCount).toBe(THREADS)
}

/** An identity matrix in kernel memory: SPD, and factoring it costs the full n³/3 all the same. */
function identity(p: WorkerPool, n: number): ReturnType<WorkerPool['arena']['alloc']> {
  const r = p.arena.alloc(n * n * 8)
  const a = p.arena.f64(r, 0, n * n)
  a.fill(0)
  for (let i = 0; i < n; i++) a[i * n + i] = 1
  return r
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

describe('WorkerPool faults', () => {
  it('returns what kernels return: cholesky_lower reports the failing column', async () => {
    const r = pool.arena.alloc(4 * 8)
    try {
      pool.arena.f64(r, 0, 4).set([4, 2, 2, 10]) // L = [[2, 0], [1, 3]]
      expect(await pool.call([['cholesky_lower', r.ptr, 2]])).toEqual([0])
      expect(Array.from(pool.arena.f64(r, 0, 4))).toEqual([2, 0, 1, 3])
      pool.arena.f64(r, 0, 4).set([1, 2, 2, 1]) // pivot 1 − 4 < 0 at column 1
      expect(await pool.call([['cholesky_lower', r.ptr, 2]])).toEqual([2])
    } finally {
      pool.arena.release(r)
    }
  })

  it('a trap in a kernel fails the task with a typed error naming the kernel and the trap; the next task works', async () => {
    const bad: KernelCall = ['convert_bf16', 0, 2 ** 30 - 64, 1 << 20] // writes past the memory's end
    const e = await rejection(pool.run([bad]))
    expect(e.code).toBe('kernel')
    expect(e.message).toMatch(/convert_bf16/)
    expect(e.message).toMatch(/out of bounds/)
    await expectPoolWorks(pool)
  })

  it('a fault stops the rest of the same work before any of it rejects, and spares other jobs', async () => {
    const job = new AbortController()
    const A = identity(pool, LONG_N)
    try {
      const started = performance.now()
      const long = rejection(pool.run([['cholesky_lower', A.ptr, LONG_N]]))
      const otherJob = withCancelScope(job.signal, () => pool.run([['convert_bf16', 0, 0, 0]]))
      await sleep(200)
      const bad = pool.run([['__test_throw']])
      const [eLong, eBad] = await Promise.all([long, rejection(bad)])
      expect(performance.now() - started).toBeLessThan(scaled(3000)) // not the seconds the factorization takes
      expect(eBad.code).toBe('kernel')
      expect(eBad.message).toMatch(/crashed.*injected crash in the worker.*__test_throw/)
      expect(eLong.code).toBe('kernel')
      expect(eLong.message).toMatch(/stopped/)
      await expect(otherJob).resolves.toBeUndefined()
    } finally {
      pool.arena.release(A)
    }
    await expectPoolWorks(pool)
  })

  it('a worker that exits mid-task rejects the task (no hang) and is replaced', async () => {
    const e = await rejection(
      pool.run([
        ['convert_bf16', 0, 0, 0],
        ['__test_exit', 7],
      ]),
    )
    expect(e.code).toBe('kernel')
    expect(e.message).toMatch(/exited with code 7 while running kernel convert_bf16, __test_exit/)
    await expectPoolWorks(pool)
  })

  it('a worker that runs out of memory fails its task with that fault and is replaced', async () => {
    const small = await WorkerPool.create({
      threads: THREADS,
      workerFile: FAULT_WORKER,
      resourceLimits: { maxOldGenerationSizeMb: 48 },
    })
    try {
      const e = await rejection(small.run([['__test_oom']]))
      expect(e.code).toBe('kernel')
      expect(e.message).toMatch(/crashed \(.*out of memory.*\) while running kernel __test_oom/i)
      await expectPoolWorks(small)
    } finally {
      await small.close()
    }
  })

  it('a worker killed from outside in the middle of a long kernel rejects the task and is replaced', async () => {
    // Every worker thread started from now on announces itself here: the new pool's, then its replacements.
    const seen: Worker[] = []
    const onWorker = (w: Worker): void => {
      seen.push(w)
    }
    process.on('worker', onWorker)
    const fresh = await WorkerPool.create({ threads: THREADS })
    const A = identity(fresh, LONG_N)
    try {
      // The event comes once a thread is up.
      for (let waited = 0; seen.length < THREADS && waited < scaled(10_000); waited += 20) await sleep(20)
      const started = seen.slice()
      expect(started.length).toBe(THREADS)
      // The rejection is observed from the start: it may land while the workers are still being terminated.
      const busy = rejection(fresh.run([['cholesky_lower', A.ptr, LONG_N]]))
      await sleep(300)
      // Kill them all, the busy one mid-kernel and the idle one: the pool must survive both.
      await Promise.all(started.map((w) => w.terminate()))
      const e = await busy
      expect(e.code).toBe('kernel')
      expect(e.message).toMatch(/exited with code \d+ while running kernel cholesky_lower/)
      await expectPoolWorks(fresh)
      for (let waited = 0; seen.length < 2 * THREADS && waited < scaled(10_000); waited += 20) await sleep(20)
      expect(seen.length).toBe(2 * THREADS) // one replacement each
    } finally {
      process.off('worker', onWorker)
      fresh.arena.release(A)
      await fresh.close()
    }
  })

  it('running out of kernel memory is a typed out-of-memory error naming the allocation, and nothing leaks', async () => {
    const before = pool.arena.liveBytes
    let e: unknown
    try {
      pool.arena.alloc(2 ** 31, 'a 16384×16384 Hessian')
    } catch (err) {
      e = err
    }
    expect(e).toBeInstanceOf(WhittleError)
    expect((e as WhittleError).code).toBe('out-of-memory')
    expect((e as WhittleError).message).toMatch(
      /a 16384×16384 Hessian needs 2048 MiB of kernel memory.*ceiling is 1024 MiB/,
    )
    expect(pool.arena.liveBytes).toBe(before)
    await expectPoolWorks(pool)
  })
})

describe('WorkerPool cancel', () => {
  it('stops a long single kernel call within a second, frees its worker, and the pool goes on', async () => {
    const A = identity(pool, LONG_N)
    const job = new AbortController()
    try {
      const parts = withCancelScope(job.signal, () => [
        pool.run([['cholesky_lower', A.ptr, LONG_N]]),
        pool.run([['invert_lower', A.ptr, LONG_N]]), // queued behind it on the other worker, or running
        pool.run([['cholesky_lower', A.ptr, LONG_N]]), // queued
      ])
      await sleep(300)
      const t0 = performance.now()
      job.abort()
      const errors = await Promise.all(parts.map(rejection))
      const latency = performance.now() - t0
      expect(latency).toBeLessThan(scaled(1000))
      for (const e of errors) expect(e.code).toBe('cancelled')
      // Once cancelled, the job's further calls fail at once.
      expect((await rejection(withCancelScope(job.signal, () => pool.run([['convert_bf16', 0, 0, 0]])))).code).toBe(
        'cancelled',
      )
    } finally {
      pool.arena.release(A)
    }
    await expectPoolWorks(pool)
  })

  it('takes an explicit signal as well as the job scope', async () => {
    const A = identity(pool, LONG_N)
    const c = new AbortController()
    try {
      const p = rejection(pool.run([['cholesky_lower', A.ptr, LONG_N]], { signal: c.signal }))
      await sleep(200)
      const t0 = performance.now()
      c.abort()
      expect((await p).code).toBe('cancelled')
      expect(performance.now() - t0).toBeLessThan(scaled(1000))
    } finally {
      pool.arena.release(A)
    }
    await expectPoolWorks(pool)
  })
})
