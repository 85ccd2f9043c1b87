// Pause and live training numbers for the job a piece of engine code runs in. Like the cancel scope
// (cancel.ts) they travel in the job's async context, so the layers between a job runner and the training
// loop (compress, pipeline, method) need not pass them along:
// - the pause gate: the registry gives every job one; the training loop waits on it between optimizer
//   steps, when no kernel call is in flight, so the worker pool is free for other jobs while it waits;
// - the training reporter: a job runner that wants per-step numbers installs one around the work.

import { AsyncLocalStorage } from 'node:async_hooks'
import type { TrainingEvalPoint, TrainingStepPoint } from '../../contract/api'
import { cancelledError, effectiveSignal } from './cancel'

/** A flag the training loop waits on; resume (or a cancel) lets it go on. */
export class PauseGate {
  private pausedNow = false
  private waiters: (() => void)[] = []

  get paused(): boolean {
    return this.pausedNow
  }

  pause(): void {
    this.pausedNow = true
  }

  resume(): void {
    this.pausedNow = false
    const waiting = this.waiters
    this.waiters = []
    for (const wake of waiting) wake()
  }

  /** Resolves at once when not paused, else on resume; rejects with the cancelled error on abort. */
  async wait(signal?: AbortSignal): Promise<void> {
    while (this.pausedNow) {
      if (signal?.aborted) throw cancelledError()
      await new Promise<void>((resolve) => {
        const onAbort = (): void => resolve()
        signal?.addEventListener('abort', onAbort, { once: true })
        this.waiters.push(() => {
          signal?.removeEventListener('abort', onAbort)
          resolve()
        })
      })
    }
    if (signal?.aborted) throw cancelledError()
  }
}

/** Where a training loop's numbers go: the job runner turns them into progress updates. */
export interface TrainingReporter {
  step(point: TrainingStepPoint, totalSteps: number): void
  eval(point: TrainingEvalPoint): void
}

const pauseScope = new AsyncLocalStorage<PauseGate>()
const reporterScope = new AsyncLocalStorage<TrainingReporter>()

/** Runs `fn` with `gate` as the pause gate of everything it starts. */
export function withPauseGate<T>(gate: PauseGate, fn: () => T): T {
  return pauseScope.run(gate, fn)
}

/** Runs `fn` with `reporter` receiving the training numbers of everything it starts. */
export function withTrainingReporter<T>(reporter: TrainingReporter, fn: () => T): T {
  return reporterScope.run(reporter, fn)
}

/**
 * Between two units of work that may pause: waits while the job is paused (outside a job: never). A
 * cancel ends the wait: `signal`'s, or else the job's cancel scope's.
 */
export function waitWhilePaused(signal?: AbortSignal): Promise<void> {
  return pauseScope.getStore()?.wait(effectiveSignal(signal)) ?? Promise.resolve()
}

/** The reporter of the job this code runs for, if its runner installed one. */
export function currentTrainingReporter(): TrainingReporter | undefined {
  return reporterScope.getStore()
}
