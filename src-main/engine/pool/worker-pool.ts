// A worker_threads pool whose workers all instantiate the same compiled kernel Module over the same
// shared WebAssembly.Memory. Work is a short list of kernel calls on regions of that memory, so a
// message carries only numbers: the data itself never crosses threads by copy.
//
// Faults and cancel. Callers split one operation into several tasks on disjoint slices of one region
// and free the region as soon as their Promise.all settles, so no task of an operation may still be
// writing when any of its promises rejects. Tasks are therefore grouped by the job they belong to (the
// cancel signal, explicit or from the job's cancel scope, see jobs/cancel.ts): when one task faults (a
// trap, an exception, its worker exits or is killed) or the job is cancelled, the whole group stops
// together: queued tasks are dropped, the workers running the others are terminated, and only once
// every one of them has stopped do the group's promises reject. The stopped workers are replaced by
// fresh instances over the same memory, so the next job runs as before.
// Cancel terminates busy workers rather than waiting for a kernel call to end because single calls run
// for tens of seconds (the 5632² inverse Cholesky of GPTQ on a 1.1B model), and terminating a worker
// stops a WebAssembly loop within milliseconds. The memory it was writing belongs to the cancelled job,
// which frees it only after the termination has completed; nothing else can see a half-written region.

import os from 'node:os'
import { Worker, type ResourceLimits } from 'node:worker_threads'
import {
  compileKernels,
  createKernelMemory,
  instantiateKernels,
  kernelVariantOf,
  locatePoolWorker,
  type KernelVariant,
} from '../../../kernels/host/load'
import type { KernelExports } from '../../../kernels/host/exports'
import type { FileRead, KernelCall, WorkerReply, WorkerRequest } from './worker-protocol'
import { WhittleError } from '../errors'
import { cancelledError, effectiveSignal } from '../jobs/cancel'
import { MemoryArena } from './memory-arena'
import { readIntoMemory } from '../io/read-sync'

export type { KernelCall }

const MAX_PAGES = 16384 // must match --maximumMemory in kernels/build.mjs
/** More unexpected worker deaths than this within RESPAWN_WINDOW_MS: stop replacing them. */
const MAX_RESPAWNS = 8
const RESPAWN_WINDOW_MS = 10_000

/** The group of tasks run outside any job and without a signal. */
const NO_JOB = Symbol('no job')
type Group = AbortSignal | typeof NO_JOB

interface Task {
  id: number
  calls: KernelCall[]
  read: FileReadOf | null
  group: Group
  resolve: (results: number[]) => void
  reject: (e: Error) => void
  slot: Slot | null
}

interface Slot {
  worker: Worker
  task: Task | null
  /** Set when the pool terminated it (cancel, fault, close): its exit is expected. */
  retiring: boolean
  /** The uncaught error it reported, if any, for the message when it exits. */
  crash: Error | null
}

export interface PoolOptions {
  /** Worker threads; default: the machine's cores, at most 8. 0 runs every call on the main thread. */
  threads?: number
  /** The worker entry; default kernels/build/pool-worker.mjs. Tests point it at a wrapper that injects faults. */
  workerFile?: string
  /** Heap limits of each worker (default: Node's). */
  resourceLimits?: ResourceLimits
  /**
   * 'fused' asks for the relaxed-SIMD kernels (matmul with fused multiply-adds: faster, within a stated
   * tolerance of the twins); the pool falls back to 'exact' where the runtime cannot run them. Default 'exact'.
   */
  kernels?: KernelVariant
}

export interface RunOptions {
  /** Stops the calls when it fires; default: the cancel scope of the job this runs in. */
  signal?: AbortSignal
  /**
   * A file range the worker copies into kernel memory before the calls (io/read-sync.ts says why). The
   * descriptor must stay open until the run settles; `file` names it in errors.
   */
  read?: FileReadOf
}

/** A FileRead with the path of the file its descriptor belongs to. */
export interface FileReadOf extends FileRead {
  file: string
}

function kernelNames(calls: KernelCall[]): string {
  const names = [...new Set(calls.map((c) => (Array.isArray(c) ? String(c[0]) : '?')))]
  return names.length > 3 ? `${names.slice(0, 3).join(', ')}, …` : names.join(', ')
}

export class WorkerPool {
  readonly memory: WebAssembly.Memory
  readonly arena: MemoryArena
  /** The same kernels instantiated on this thread, for small synchronous work and for threads = 0. */
  readonly kernels: KernelExports
  readonly threads: number
  private readonly slots: Slot[] = []
  private readonly idle: Slot[] = []
  private readonly queue: Task[] = []
  /** One abort listener per signal with tasks outstanding (not one per task: signals warn past 10). */
  private readonly watched = new Map<AbortSignal, { tasks: number; onAbort: () => void }>()
  private readonly respawns: number[] = []
  private nextId = 1
  private closed = false

  private constructor(
    memory: WebAssembly.Memory,
    kernels: KernelExports,
    threads: number,
    private readonly module: WebAssembly.Module,
    private readonly workerFile: string | null,
    private readonly resourceLimits: PoolOptions['resourceLimits'],
  ) {
    this.memory = memory
    this.kernels = kernels
    this.threads = threads
    this.arena = new MemoryArena(memory, kernels.heap_base(), MAX_PAGES)
  }

  static async create(options: PoolOptions = {}): Promise<WorkerPool> {
    const threads = Math.max(0, Math.min(options.threads ?? Math.min(8, os.availableParallelism()), 64))
    const module = await compileKernels(options.kernels ?? 'exact')
    const memory = createKernelMemory(64, MAX_PAGES)
    const kernels = instantiateKernels(module, memory)
    const pool = new WorkerPool(
      memory,
      kernels,
      threads,
      module,
      threads > 0 ? (options.workerFile ?? locatePoolWorker()) : null,
      options.resourceLimits,
    )
    for (let i = 0; i < threads; i++) pool.spawn()
    return pool
  }

  /** The kernel build this pool runs: 'fused' only where asked for and supported. */
  get kernelVariant(): KernelVariant {
    return kernelVariantOf(this.module)
  }

  /** Live workers (fewer than `threads` only while a replacement is pending or after repeated crashes). */
  get workerCount(): number {
    return this.slots.length
  }

  /** Runs the calls in order on one worker (or inline when threads = 0). */
  async run(calls: KernelCall[], options: RunOptions = {}): Promise<void> {
    await this.call(calls, options)
  }

  /** Like run, and returns what each call returned (0 for kernels that return nothing). */
  call(calls: KernelCall[], options: RunOptions = {}): Promise<number[]> {
    const signal = effectiveSignal(options.signal)
    if (this.closed) return Promise.reject(new WhittleError('kernel', null, 'the kernel worker pool is closed'))
    if (signal?.aborted) return Promise.reject(cancelledError())
    const read = options.read ?? null
    if (this.threads === 0) {
      try {
        if (read) readInline(this.memory, read)
        return Promise.resolve(runInline(this.kernels, calls))
      } catch (e) {
        return Promise.reject(
          e instanceof WhittleError
            ? e
            : new WhittleError('kernel', null, `kernel ${kernelNames(calls)} failed: ${describe(e)}`),
        )
      }
    }
    if (this.slots.length === 0)
      return Promise.reject(
        new WhittleError('kernel', null, 'no kernel worker is running (they kept failing at start)'),
      )
    return new Promise((resolve, reject) => {
      const group = signal ?? NO_JOB
      const task: Task = { id: this.nextId++, calls, read, group, resolve, reject, slot: null }
      if (signal) this.watch(signal)
      const settle =
        <A>(fn: (a: A) => void) =>
        (a: A): void => {
          if (signal) this.unwatch(signal)
          fn(a)
        }
      task.resolve = settle(resolve)
      task.reject = settle(reject)
      this.queue.push(task)
      this.dispatch()
    })
  }

  async close(): Promise<void> {
    this.closed = true
    const error = new WhittleError('kernel', null, 'the kernel worker pool was closed')
    const tasks = this.queue.splice(0)
    for (const s of this.slots) if (s.task) tasks.push(s.task)
    const slots = this.slots.splice(0)
    this.idle.length = 0
    for (const s of slots) s.retiring = true
    await Promise.all(slots.map((s) => s.worker.terminate()))
    for (const t of tasks) t.reject(error)
  }

  private spawn(): void {
    const slot: Slot = {
      worker: new Worker(this.workerFile!, {
        workerData: { module: this.module, memory: this.memory },
        resourceLimits: this.resourceLimits,
      }),
      task: null,
      retiring: false,
      crash: null,
    }
    const w = slot.worker
    w.unref()
    w.on('message', (reply: WorkerReply) => this.onReply(slot, reply))
    w.on('error', (e) => {
      slot.crash = e
    })
    w.on('exit', (code) => this.onExit(slot, code))
    this.slots.push(slot)
    this.idle.push(slot)
  }

  private dispatch(): void {
    while (this.idle.length > 0 && this.queue.length > 0) {
      const slot = this.idle.pop()!
      const task = this.queue.shift()!
      slot.task = task
      task.slot = slot
      slot.worker.ref() // keep the process alive while work is outstanding
      slot.worker.postMessage(workerRequest(task))
    }
  }

  private onReply(slot: Slot, reply: WorkerReply): void {
    const task = slot.task
    if (slot.retiring || !task || reply?.id !== task.id) return
    if (reply.ok) {
      slot.task = null
      task.slot = null
      slot.worker.unref()
      this.idle.push(slot)
      task.resolve(reply.results ?? new Array<number>(task.calls.length).fill(0))
      this.dispatch()
      return
    }
    // A trap can leave the instance's state undefined: the worker is replaced along with the group's.
    // A failed read ran no call, but its group stops all the same: the caller frees the group's memory
    // once any of its promises rejects, so none of its tasks may still be writing then.
    if (reply.read) {
      this.stopGroup(task.group, new WhittleError(reply.read, task.read?.file ?? null, reply.error), slot)
      return
    }
    const kernel = reply.kernel ?? kernelNames(task.calls)
    this.stopGroup(task.group, new WhittleError('kernel', null, `kernel ${kernel} failed: ${reply.error}`), slot)
  }

  private onExit(slot: Slot, code: number): void {
    if (slot.retiring) return
    // Died on its own: an uncaught exception, process.exit, out of memory, or a kill from outside.
    this.removeSlot(slot)
    const task = slot.task
    const how = slot.crash ? `crashed (${describe(slot.crash)})` : `exited with code ${code}`
    const doing = task ? ` while running kernel ${kernelNames(task.calls)}` : ''
    const error = new WhittleError('kernel', null, `a kernel worker ${how}${doing}`)
    if (task) {
      task.slot = null
      slot.task = null
      // First, so that none of the group's queued tasks is handed to the replacement.
      this.stopGroup(task.group, error, null, task)
    }
    this.replace(1, error)
  }

  /**
   * Stops every task of `group`: queued ones are dropped, running ones have their workers terminated
   * (plus `faulted`, a worker that answered with a fault). Once all of those workers have stopped, the
   * group's promises reject: `trigger` (the task that faulted, or all of them on cancel) with `error`,
   * the others with a note that they were stopped because of it. Stopped workers are replaced.
   */
  private stopGroup(group: Group, error: WhittleError, faulted: Slot | null, trigger?: Task): void {
    const stopped: Task[] = trigger ? [trigger] : []
    for (let i = this.queue.length - 1; i >= 0; i--) {
      if (this.queue[i].group === group) stopped.push(...this.queue.splice(i, 1))
    }
    const retired: Slot[] = []
    for (const slot of [...this.slots]) {
      if (slot === faulted || (slot.task && slot.task.group === group)) {
        if (slot.task && !stopped.includes(slot.task)) stopped.push(slot.task)
        slot.retiring = true
        this.removeSlot(slot)
        retired.push(slot)
      }
    }
    const faultTask = faulted?.task ?? trigger
    void Promise.all(retired.map((s) => s.worker.terminate().catch(() => undefined))).then(() => {
      if (!this.closed) this.replace(retired.length, error)
      for (const t of stopped) {
        const cancelled = error.code === 'cancelled'
        t.reject(
          cancelled || t === faultTask
            ? error
            : new WhittleError('kernel', null, `stopped: another part of the same work failed (${error.message})`),
        )
      }
    })
  }

  private removeSlot(slot: Slot): void {
    const i = this.slots.indexOf(slot)
    if (i >= 0) this.slots.splice(i, 1)
    const j = this.idle.indexOf(slot)
    if (j >= 0) this.idle.splice(j, 1)
  }

  /** Starts `count` fresh workers, unless workers die too often (then the queue fails with `cause`). */
  private replace(count: number, cause: WhittleError): void {
    if (this.closed) return
    const now = Date.now()
    while (this.respawns.length > 0 && now - this.respawns[0] > RESPAWN_WINDOW_MS) this.respawns.shift()
    // A cancel stops healthy workers on purpose: only faults count towards the limit.
    const fault = cause.code !== 'cancelled'
    for (let i = 0; i < count; i++) {
      if (fault && this.respawns.length >= MAX_RESPAWNS) break
      if (fault) this.respawns.push(now)
      try {
        this.spawn()
      } catch {
        break
      }
    }
    if (this.slots.length === 0) {
      for (const t of this.queue.splice(0))
        t.reject(new WhittleError('kernel', null, `no kernel worker could be restarted after: ${cause.message}`))
      return
    }
    this.dispatch()
  }

  private watch(signal: AbortSignal): void {
    const w = this.watched.get(signal)
    if (w) {
      w.tasks++
      return
    }
    const onAbort = (): void => this.stopGroup(signal, cancelledError(), null)
    this.watched.set(signal, { tasks: 1, onAbort })
    signal.addEventListener('abort', onAbort, { once: true })
  }

  private unwatch(signal: AbortSignal): void {
    const w = this.watched.get(signal)
    if (!w || --w.tasks > 0) return
    this.watched.delete(signal)
    signal.removeEventListener('abort', w.onAbort)
  }
}

function describe(e: unknown): string {
  if (!(e instanceof Error)) return String(e)
  return e.name && e.name !== 'Error' ? `${e.name}: ${e.message}` : e.message
}

/** What a worker gets for a task: numbers only (a read's file name stays here, for errors). */
function workerRequest(task: Task): WorkerRequest {
  if (!task.read) return { id: task.id, calls: task.calls }
  const { fd, position, length, ptr } = task.read
  return { id: task.id, calls: task.calls, read: { fd, position, length, ptr } }
}

/** A run's read on this thread (threads = 0), failing as a worker's would. */
function readInline(memory: WebAssembly.Memory, read: FileReadOf): void {
  const outcome = readIntoMemory(memory.buffer, read)
  if (!outcome.ok) throw new WhittleError(outcome.failure, read.file, outcome.message)
}

function runInline(kernels: KernelExports, calls: KernelCall[]): number[] {
  const table = kernels as unknown as Record<string, (...args: number[]) => unknown>
  const results: number[] = []
  for (const [name, ...args] of calls) {
    if (!Object.hasOwn(table, name) || typeof table[name] !== 'function')
      throw new WhittleError('kernel', null, `unknown kernel ${JSON.stringify(name)}`)
    const r = table[name](...args)
    results.push(typeof r === 'number' ? r : 0)
  }
  return results
}

let shared: Promise<WorkerPool> | null = null

/** The process-wide pool, created on first use. */
export function getPool(): Promise<WorkerPool> {
  if (!shared) {
    const created = WorkerPool.create()
    created.catch(() => {
      if (shared === created) shared = null
    }) // a failed start (kernels not built) may be retried
    shared = created
  }
  return shared
}

/** Ends the process-wide pool's workers, if it was ever created. */
export async function closeSharedPool(): Promise<void> {
  const p = shared
  shared = null
  if (p) await (await p).close()
}
