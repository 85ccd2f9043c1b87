// The main-thread side of the parser worker: one small worker_threads worker (not the WASM kernel pool)
// that parses what can take seconds on hostile or merely large input: safetensors header JSON, GGUF
// metadata walks, tokenizer.json loading and whole-text encoding. The event loop that serves the UI and
// other web clients stays free meanwhile, and a parse that exhausts memory kills only the worker (its
// heap is capped), failing that one job with a typed error.
//
// Errors cross the thread boundary as {code, file, problem} and are rebuilt as WhittleErrors; anything
// else the worker throws is a bug and comes back as a plain Error, so the fuzz harness still sees it.

import { existsSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { Worker } from 'node:worker_threads'
import { locateKernelBuild } from '../../../kernels/host/load'
import { WhittleError, type ErrorCode } from '../errors'

export type ParseJob =
  | { kind: 'safetensors-header'; path: string; header: Uint8Array; dataLength: number }
  | { kind: 'gguf'; path: string }
  | { kind: 'tokenize'; folder: string; text: string }

export interface SerializedError {
  whittle: boolean
  code: ErrorCode
  file: string | null
  /** For WhittleErrors the problem without the "file: " prefix; otherwise the whole message. */
  problem: string
}

export type ParseReply = { id: number; ok: true; value: unknown } | { id: number; ok: false; error: SerializedError }

/** The worker's heap cap. Every input is size-capped far below what needs this (limits.ts); a file that still
 *  exhausts it fails its own job instead of taking the engine's process down. */
const WORKER_HEAP_MB = 4096

export function serializeError(e: unknown): SerializedError {
  if (e instanceof WhittleError) {
    const prefix = e.file ? `${e.file}: ` : ''
    const problem = prefix && e.message.startsWith(prefix) ? e.message.slice(prefix.length) : e.message
    return { whittle: true, code: e.code, file: e.file, problem }
  }
  const problem = e instanceof Error ? `${e.name}: ${e.message}` : String(e)
  return { whittle: false, code: 'format', file: null, problem }
}

export function deserializeError(s: SerializedError): Error {
  return s.whittle ? new WhittleError(s.code, s.file, s.problem) : new Error(s.problem)
}

interface Pending {
  resolve: (v: unknown) => void
  reject: (e: Error) => void
  file: string
}

/** How the worker is started: from the TS sources (tsx registered by a small .mjs boot file) when this module
 *  runs from source, else the bundle kernels/build.mjs writes beside the kernels. Null when neither exists. */
let entryFound: { file: string; workerData: unknown } | null | undefined

function workerEntry(): { file: string; workerData: unknown } | null {
  if (entryFound === undefined) entryFound = findWorkerEntry()
  return entryFound
}

function findWorkerEntry(): { file: string; workerData: unknown } | null {
  const self = fileURLToPath(import.meta.url)
  if (self.endsWith('.ts')) {
    const boot = path.join(path.dirname(self), 'parse-worker-boot.mjs')
    const entry = path.join(path.dirname(self), 'parse-worker.ts')
    return existsSync(boot) && existsSync(entry)
      ? { file: boot, workerData: { entry: pathToFileURL(entry).href } }
      : null
  }
  try {
    const bundle = path.join(locateKernelBuild(), 'parse-worker.mjs')
    return existsSync(bundle) ? { file: bundle, workerData: {} } : null
  } catch {
    return null
  }
}

class ParseWorker {
  private worker: Worker | null = null
  private readonly pending = new Map<number, Pending>()
  private nextId = 1

  /** False when no worker entry exists (an unbuilt bundle); callers then parse inline. */
  available(): boolean {
    return this.worker !== null || workerEntry() !== null
  }

  run<T>(job: ParseJob, file: string): Promise<T> {
    const worker = this.start()
    const id = this.nextId++
    const transfer = job.kind === 'safetensors-header' ? [job.header.buffer as ArrayBuffer] : []
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, file })
      worker.ref() // a pending parse must keep a CLI process alive
      worker.postMessage({ id, job }, transfer)
    })
  }

  /** Stops the worker; jobs in flight fail with an 'io' error, and the next job starts a fresh worker. */
  async stop(): Promise<void> {
    const w = this.worker
    if (!w) return
    await w.terminate()
    this.onExit(w, new Error('stopped'))
  }

  private start(): Worker {
    if (this.worker) return this.worker
    const entry = workerEntry()
    if (!entry) throw new Error('parser worker entry is missing')
    const w = new Worker(entry.file, {
      workerData: entry.workerData,
      resourceLimits: { maxOldGenerationSizeMb: WORKER_HEAP_MB },
    })
    w.unref()
    w.on('message', (reply: ParseReply) => this.onReply(reply))
    w.on('error', (e) => this.onExit(w, e))
    w.on('exit', (code) => this.onExit(w, new Error(`exited with code ${code}`)))
    this.worker = w
    return w
  }

  private onReply(reply: ParseReply): void {
    const p = this.pending.get(reply.id)
    if (!p) return
    this.pending.delete(reply.id)
    if (this.pending.size === 0) this.worker?.unref()
    if (reply.ok) p.resolve(reply.value)
    else p.reject(deserializeError(reply.error))
  }

  /** The worker died (out of memory, a crash): fail what it held, start afresh on the next job. */
  private onExit(w: Worker, e: Error): void {
    if (this.worker !== w) return
    this.worker = null
    // Out of memory is the input's doing (every cap passed, yet it needs gigabytes); anything else is not.
    const oom = (e as NodeJS.ErrnoException).code === 'ERR_WORKER_OUT_OF_MEMORY'
    for (const p of this.pending.values()) {
      p.reject(
        oom
          ? new WhittleError('format', p.file, `parsing it needs more than ${WORKER_HEAP_MB} MB of memory`)
          : new WhittleError('io', p.file, `the parser worker stopped while reading it (${e.message})`),
      )
    }
    this.pending.clear()
    void w.terminate()
  }
}

const shared = new ParseWorker()

/**
 * Runs `job` in the parser worker. `file` names the input for errors raised by the worker's death.
 * `inline` does the same work on this thread; it runs only when the worker cannot exist (no entry file).
 */
export function runParseJob<T>(job: ParseJob, file: string, inline: () => Promise<T>): Promise<T> {
  if (!shared.available()) return inline()
  return shared.run<T>(job, file)
}

/** Stops the parser worker (at shutdown, or to test recovery); a later job starts a new one. */
export function stopParseWorker(): Promise<void> {
  return shared.stop()
}
