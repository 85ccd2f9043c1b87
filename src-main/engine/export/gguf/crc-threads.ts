// CRC-32 on threads of their own, over the kernel pool's shared memory: node:zlib's crc32 (native, with
// the CPU's carry-less multiply where it has one) hashes about 4.5 GB per CPU-second here on bytes fresh
// in the cache, where a WebAssembly table kernel (slice-by-16: WebAssembly has no carry-less multiply)
// managed 2.2. The pool's workers only run WebAssembly kernels, so these threads are separate: one per
// pool worker, each hashing a byte range of kernel memory it is told about, so that only numbers cross
// threads. They start at the first hash, idle (keeping nothing alive) between calls, and close() ends them.

import { Worker } from 'node:worker_threads'
import { WhittleError } from '../../errors'
import type { WorkerPool } from '../../pool/worker-pool'

/** The threads' code: reply to { id, ptr, bytes } with zlib's CRC-32 of those bytes of the shared memory. */
const THREAD_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads')
const { crc32 } = require('node:zlib')
parentPort.on('message', ({ id, ptr, bytes }) => {
  parentPort.postMessage({ id, crc: crc32(new Uint8Array(workerData.memory.buffer, ptr, bytes)) })
})
`

interface Pending {
  thread: number
  resolve: (crc: number) => void
  reject: (e: Error) => void
}

export class CrcThreads {
  readonly count: number
  private readonly memory: WebAssembly.Memory
  /** Started at the first hash. */
  private workers: Worker[] = []
  /** Requests outstanding on each thread: a busy thread keeps the process alive, an idle one does not. */
  private busy: number[] = []
  private readonly pending = new Map<number, Pending>()
  private nextId = 0
  private turn = 0
  private failure: WhittleError | null = null
  private closed = false

  /** One thread per worker of `pool` (at least one), over its kernel memory. */
  constructor(pool: WorkerPool) {
    this.memory = pool.memory
    this.count = Math.max(1, pool.threads)
  }

  private spawn(): void {
    const memory = this.memory
    this.workers = Array.from({ length: this.count }, () => {
      const w = new Worker(THREAD_SOURCE, { eval: true, workerData: { memory } })
      w.unref()
      w.on('message', (m: { id: number; crc: number }) => this.settle(m.id, m.crc))
      w.on('error', (e) => this.fail(`a CRC-32 thread failed: ${e.message}`))
      w.on('exit', (code) => {
        if (!this.closed) this.fail(`a CRC-32 thread exited with code ${code}`)
      })
      return w
    })
    this.busy = this.workers.map(() => 0)
  }

  /** zlib's CRC-32 of the `bytes` bytes at `ptr` of kernel memory, on the next thread in turn. */
  hash(ptr: number, bytes: number): Promise<number> {
    if (this.failure) return Promise.reject(this.failure)
    if (this.closed) return Promise.reject(new WhittleError('kernel', null, 'the CRC-32 threads are closed'))
    if (this.workers.length === 0) this.spawn()
    const thread = this.turn++ % this.workers.length
    const id = this.nextId++
    return new Promise((resolve, reject) => {
      this.pending.set(id, { thread, resolve, reject })
      if (this.busy[thread]++ === 0) this.workers[thread].ref()
      this.workers[thread].postMessage({ id, ptr, bytes })
    })
  }

  /** Ends the threads; requests still outstanding fail. */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    await Promise.all(this.workers.map((w) => w.terminate()))
    this.rejectAll(new WhittleError('kernel', null, 'the CRC-32 threads were closed'))
  }

  private settle(id: number, crc: number): void {
    const p = this.pending.get(id)
    if (!p) return
    this.pending.delete(id)
    this.release(p.thread)
    p.resolve(crc >>> 0)
  }

  private release(thread: number): void {
    if (--this.busy[thread] === 0) this.workers[thread].unref()
  }

  private fail(message: string): void {
    this.failure ??= new WhittleError('kernel', null, message)
    this.rejectAll(this.failure)
  }

  private rejectAll(error: WhittleError): void {
    for (const [id, p] of this.pending) {
      this.pending.delete(id)
      this.release(p.thread)
      p.reject(error)
    }
  }
}
