// Long work runs as jobs: an id, progress the UI can show, a result or a readable error, and cancel.
// The runner gets an AbortSignal and checks it between chunks; it also runs in the signal's cancel scope
// (jobs/cancel.ts), so the worker pool stops its kernel calls, however long, when the job is cancelled.

import { randomUUID } from 'node:crypto'
import type { JobId, JobKind, JobOutcome, JobUpdate, TrainingProgress } from '../../contract/api'
import { describeError } from '../errors'
import { throwIfCancelled, withCancelScope } from './cancel'
import { PauseGate, withPauseGate } from './job-controls'

export interface JobContext {
  signal: AbortSignal
  /**
   * fraction in 0..1; message is what the user reads ("layer 3/22: mlp.down_proj"); training: steps and
   * evals just finished, which the next update carries (none is lost to the rate limit).
   */
  progress(fraction: number, message: string, training?: TrainingProgress): void
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
  /** The training loop waits on it between optimizer steps (job-controls.ts). */
  gate: PauseGate
  /** Training points not yet sent; the next update carries them. */
  pendingTraining: TrainingProgress | null
  /** A trailing update, so rate-limited training points still arrive while the job goes on. */
  flushTimer: ReturnType<typeof setTimeout> | null
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
      gate: new PauseGate(),
      pendingTraining: null,
      flushTimer: null,
    }
    this.jobs.set(id, entry)
    const ctx: JobContext = {
      signal: controller.signal,
      progress: (fraction, message, training) => {
        if (entry.update.state !== 'running') return
        entry.update = { ...entry.update, progress: Math.max(0, Math.min(1, fraction)), message }
        if (training) entry.pendingTraining = mergeTraining(entry.pendingTraining, training)
        const now = Date.now()
        if (now - entry.lastEmit >= PROGRESS_INTERVAL_MS) {
          this.flush(entry)
        } else if (entry.pendingTraining && !entry.flushTimer) {
          entry.flushTimer = setTimeout(
            () => {
              entry.flushTimer = null
              if (entry.update.state === 'running') this.flush(entry)
            },
            PROGRESS_INTERVAL_MS - (now - entry.lastEmit),
          )
        }
      },
      checkCancelled: () => throwIfCancelled(controller.signal),
    }
    this.emit(entry.update)
    const done = (async (): Promise<JobUpdate> => {
      try {
        const outcome = await withCancelScope(controller.signal, () => withPauseGate(entry.gate, () => runner(ctx)))
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
      if (entry.flushTimer) clearTimeout(entry.flushTimer)
      entry.flushTimer = null
      entry.update = { ...entry.update, paused: undefined }
      const pending = entry.pendingTraining
      entry.pendingTraining = null
      this.emit(pending ? { ...entry.update, training: pending } : entry.update)
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

  /** Holds a job's training between optimizer steps; false when the job is not running. */
  pause(id: JobId): boolean {
    return this.setPaused(id, true)
  }

  resume(id: JobId): boolean {
    return this.setPaused(id, false)
  }

  private setPaused(id: JobId, paused: boolean): boolean {
    const entry = this.jobs.get(id)
    if (!entry || entry.update.state !== 'running') return false
    if (paused) entry.gate.pause()
    else entry.gate.resume()
    entry.update = { ...entry.update, paused }
    this.flush(entry)
    return true
  }

  /** Sends the job's state now, with the training points gathered since the last update. */
  private flush(entry: JobEntry): void {
    entry.lastEmit = Date.now()
    const pending = entry.pendingTraining
    entry.pendingTraining = null
    this.emit(pending ? { ...entry.update, training: pending } : entry.update)
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

/** Training points gathered over several progress calls, oldest first. */
function mergeTraining(pending: TrainingProgress | null, next: TrainingProgress): TrainingProgress {
  if (!pending) return { totalSteps: next.totalSteps, steps: [...next.steps], evals: [...next.evals] }
  return {
    totalSteps: next.totalSteps,
    steps: [...pending.steps, ...next.steps],
    evals: [...pending.evals, ...next.evals],
  }
}
