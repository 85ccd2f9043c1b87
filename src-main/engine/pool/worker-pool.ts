// A worker_threads pool whose workers all instantiate the same compiled kernel Module over the same
// shared WebAssembly.Memory. Work is a short list of kernel calls on regions of that memory, so a
// message carries only numbers: the data itself never crosses threads by copy.

import os from 'node:os'
import { Worker } from 'node:worker_threads'
import { compileKernels, createKernelMemory, instantiateKernels, locatePoolWorker } from '../../../kernels/host/load'
import type { KernelExports } from '../../../kernels/host/exports'
import type { KernelCall, WorkerReply, WorkerRequest } from '../../../kernels/host/protocol'
import { MemoryArena } from './memory-arena'

export type { KernelCall }

const MAX_PAGES = 16384 // must match --maximumMemory in kernels/build.mjs

interface PendingTask {
  request: WorkerRequest
  resolve: () => void
  reject: (e: Error) => void
}

export interface PoolOptions {
  /** Worker threads; default: the machine's cores, at most 8. 0 runs every call on the main thread. */
  threads?: number
}

export class WorkerPool {
  readonly memory: WebAssembly.Memory
  readonly arena: MemoryArena
  /** The same kernels instantiated on this thread, for small synchronous work and for threads = 0. */
  readonly kernels: KernelExports
  readonly threads: number
  private readonly workers: Worker[] = []
  private readonly idle: Worker[] = []
  private readonly queue: PendingTask[] = []
  private readonly inFlight = new Map<number, PendingTask>()
  private readonly busy = new Map<Worker, number>()
  private nextId = 1
  private closed = false

  private constructor(memory: WebAssembly.Memory, kernels: KernelExports, threads: number) {
    this.memory = memory
    this.kernels = kernels
    this.threads = threads
    this.arena = new MemoryArena(memory, kernels.heap_base(), MAX_PAGES)
  }

  static async create(options: PoolOptions = {}): Promise<WorkerPool> {
    const threads = Math.max(0, Math.min(options.threads ?? Math.min(8, os.availableParallelism()), 64))
    const module = await compileKernels()
    const memory = createKernelMemory(64, MAX_PAGES)
    const kernels = instantiateKernels(module, memory)
    const pool = new WorkerPool(memory, kernels, threads)
    const workerFile = locatePoolWorker()
    for (let i = 0; i < threads; i++) {
      const w = new Worker(workerFile, { workerData: { module, memory } })
      w.unref()
      w.on('message', (reply: WorkerReply) => pool.onReply(w, reply))
      w.on('error', (e) => pool.onWorkerError(w, e))
      pool.workers.push(w)
      pool.idle.push(w)
    }
    return pool
  }

  /** Runs the calls in order on one worker (or inline when threads = 0). */
  run(calls: KernelCall[]): Promise<void> {
    if (this.closed) return Promise.reject(new Error('worker pool is closed'))
    if (this.threads === 0) {
      try {
        runInline(this.kernels, calls)
        return Promise.resolve()
      } catch (e) {
        return Promise.reject(e as Error)
      }
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ request: { id: this.nextId++, calls }, resolve, reject })
      this.dispatch()
    })
  }

  async close(): Promise<void> {
    this.closed = true
    for (const t of this.queue.splice(0)) t.reject(new Error('worker pool closed'))
    await Promise.all(this.workers.map((w) => w.terminate()))
  }

  private dispatch(): void {
    while (this.idle.length > 0 && this.queue.length > 0) {
      const worker = this.idle.pop()!
      const task = this.queue.shift()!
      this.inFlight.set(task.request.id, task)
      this.busy.set(worker, task.request.id)
      worker.ref() // keep the process alive while work is outstanding
      worker.postMessage(task.request)
    }
  }

  private onReply(worker: Worker, reply: WorkerReply): void {
    const task = this.inFlight.get(reply.id)
    this.inFlight.delete(reply.id)
    this.busy.delete(worker)
    worker.unref()
    this.idle.push(worker)
    if (task) {
      if (reply.ok) task.resolve()
      else task.reject(new Error(`kernel error: ${reply.error}`))
    }
    this.dispatch()
  }

  private onWorkerError(worker: Worker, e: Error): void {
    const id = this.busy.get(worker)
    if (id !== undefined) {
      this.inFlight.get(id)?.reject(new Error(`kernel worker failed: ${e.message}`))
      this.inFlight.delete(id)
    }
    // A trapped worker's instance may be unusable; drop it rather than reuse it.
    this.busy.delete(worker)
    const i = this.workers.indexOf(worker)
    if (i >= 0) this.workers.splice(i, 1)
  }
}

function runInline(kernels: KernelExports, calls: KernelCall[]): void {
  const table = kernels as unknown as Record<string, (...args: number[]) => unknown>
  for (const [name, ...args] of calls) {
    const fn = table[name]
    if (typeof fn !== 'function') throw new Error(`unknown kernel ${name}`)
    fn(...args)
  }
}

let shared: Promise<WorkerPool> | null = null

/** The process-wide pool, created on first use. */
export function getPool(): Promise<WorkerPool> {
  shared ??= WorkerPool.create()
  return shared
}

/** Ends the process-wide pool's workers, if it was ever created. */
export async function closeSharedPool(): Promise<void> {
  const p = shared
  shared = null
  if (p) await (await p).close()
}
