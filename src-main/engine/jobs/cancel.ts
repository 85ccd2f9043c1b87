// Cancellation, in one place. A job's AbortSignal reaches the engine two ways:
// - explicitly, as options.signal, checked with throwIfCancelled between chunks of work;
// - implicitly, as the job's cancel scope (AsyncLocalStorage): the worker pool reads it for every kernel
//   call, so a long kernel call started anywhere inside a job is stopped when the job is cancelled, even
//   where no code between here and there passes a signal along.
// This module depends on nothing but errors.ts, so every layer (the pool included) may use it.

import { AsyncLocalStorage } from 'node:async_hooks'
import { WhittleError } from '../errors'

const scope = new AsyncLocalStorage<AbortSignal>()

/** The error every cancelled job ends with; `file` names what was being written, if anything. */
export function cancelledError(file: string | null = null): WhittleError {
  return new WhittleError('cancelled', file, 'cancelled by the user')
}

/** Throws the cancelled error when `signal` has fired; a missing signal never cancels. */
export function throwIfCancelled(signal: AbortSignal | null | undefined, file: string | null = null): void {
  if (signal?.aborted) throw cancelledError(file)
}

/** Runs `fn` with `signal` as the cancel scope of everything it starts, awaited or not. */
export function withCancelScope<T>(signal: AbortSignal, fn: () => T): T {
  return scope.run(signal, fn)
}

/** The signal of the job this code runs for, if any. */
export function currentCancelSignal(): AbortSignal | undefined {
  return scope.getStore()
}

/** The explicit signal when given, else the job's scope. */
export function effectiveSignal(signal?: AbortSignal | null): AbortSignal | undefined {
  return signal ?? scope.getStore()
}

/** How long a synchronous stretch of main-thread work may run before it lets events (a cancel) in. */
const YIELD_EVERY_MS = 50
let lastYield = performance.now()

/**
 * For long loops on the main thread: when the thread has been busy for a while, lets pending events in
 * (a cancel arrives as one), then throws if the job was cancelled. Cheap to call often.
 */
export async function cancellationPoint(signal?: AbortSignal | null): Promise<void> {
  const s = effectiveSignal(signal)
  if (performance.now() - lastYield >= YIELD_EVERY_MS) {
    await new Promise<void>((resolve) => setImmediate(resolve))
    lastYield = performance.now()
  }
  throwIfCancelled(s)
}

/**
 * Waits for `work` unless the job is cancelled first: for work that cannot be interrupted and writes
 * nothing the job owns (a tokenizer running in the parser worker). On cancel it rejects at once and
 * leaves `work` to finish unobserved.
 */
export function untilCancelled<T>(work: Promise<T>, signal?: AbortSignal | null): Promise<T> {
  const s = effectiveSignal(signal)
  if (!s) return work
  if (s.aborted) {
    work.catch(() => undefined)
    return Promise.reject(cancelledError())
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(cancelledError())
    s.addEventListener('abort', onAbort, { once: true })
    work.then(resolve, reject).finally(() => s.removeEventListener('abort', onAbort))
  })
}
