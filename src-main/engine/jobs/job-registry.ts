// Long work runs as jobs: an id, progress the UI can show, a result or a readable error, and cancel.
// The runner gets an AbortSignal and checks it between chunks; it also runs in the signal's cancel scope
// (jobs/cancel.ts), so the worker pool stops its kernel calls, however long, when the job is cancelled.

import { randomUUID } from 'node:crypto'
import type { JobId, JobKind, JobOutcome, JobUpdate } from '../../contract/api'
import { describeError } from '../errors'
import { throwIfCancelled, withCancelScope } from './cancel'

export interface JobContext {
  signal: AbortSignal
  /** fraction in 0..1; message is what the user reads ("layer 3/22: mlp.down_proj"). */
  progress(fraction: number, message: string): void
  /** Throws a WhittleError('cancelled') when the job was cancelled. */
  checkCancelled(): void
}

/** Returns its result with the job's kind, so that the update it becomes pairs the two by type. */
export type JobRunner = (ctx: JobContext) => Promise<JobOutcome>

type Listener = (update: JobUpdate) => void

interface JobEntry {
  update: JobUpdate
  controller: AbortController
  lastEmit: number
}

/** Progress events are rate-limited so a fast loop cannot flood IPC or the WebSocket. */
const PROGRESS_INTERVAL_MS = 100

export class JobRegistry {
  private readonly jobs = new Map<JobId, JobEntry>()
  private readonly listeners = new Set<Listener>()

  onUpdate(listener: Listener): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  get(id: JobId): JobUpdate | undefined {
    return this.jobs.get(id)?.update
  }

  /** `kind` names the job while it runs; once it is done, the runner's outcome supplies kind and result together. */
  start(kind: JobKind, runner: JobRunner): { id: JobId; done: Promise<JobUpdate> } {
    const id = randomUUID()
    const controller = new AbortController()
    const entry: JobEntry = {
      update: { id, kind, state: 'running', progress: 0, message: 'starting' },
      controller,
      lastEmit: 0,
    }
    this.jobs.set(id, entry)
    const ctx: JobContext = {
      signal: controller.signal,
      progress: (fraction, message) => {
        if (entry.update.state !== 'running') return
        entry.update = { ...entry.update, progress: Math.max(0, Math.min(1, fraction)), message }
        const now = Date.now()
        if (now - entry.lastEmit >= PROGRESS_INTERVAL_MS) {
          entry.lastEmit = now
          this.emit(entry.update)
        }
      },
      checkCancelled: () => throwIfCancelled(controller.signal),
    }
    this.emit(entry.update)
    const done = (async (): Promise<JobUpdate> => {
      try {
        const outcome = await withCancelScope(controller.signal, () => runner(ctx))
        throwIfCancelled(controller.signal)
        entry.update = { id, state: 'done', progress: 1, message: 'done', ...outcome }
      } catch (e) {
        const cancelled = controller.signal.aborted
        entry.update = {
          ...entry.update,
          state: cancelled ? 'cancelled' : 'error',
          message: cancelled ? 'cancelled' : describeError(e),
          error: cancelled ? undefined : describeError(e),
        }
      }
      this.emit(entry.update)
      this.forgetOldJobs()
      return entry.update
    })()
    return { id, done }
  }

  cancel(id: JobId): boolean {
    const entry = this.jobs.get(id)
    if (!entry || entry.update.state !== 'running') return false
    entry.controller.abort()
    return true
  }

  private emit(update: JobUpdate): void {
    for (const l of this.listeners) {
      try {
        l(update)
      } catch {
        // A broken listener (a closed socket) must not break the job.
      }
    }
  }

  /** Keep finished jobs briefly for late status queries, but never grow without bound. */
  private forgetOldJobs(): void {
    const finished = [...this.jobs.entries()].filter(([, e]) => e.update.state !== 'running')
    for (const [id] of finished.slice(0, Math.max(0, finished.length - 50))) this.jobs.delete(id)
  }
}
