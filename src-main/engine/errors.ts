// Typed errors. Every fault in user input becomes a WhittleError that names the file and the problem,
// so the CLI can print one line and the UI can show it verbatim.

import { KernelArgumentError } from '../../kernels/reference/errors'

export type ErrorCode =
  | 'format' // the file's bytes break its format's rules
  | 'truncated' // the file ends before what it declares
  | 'unsupported' // valid, but a dtype/type/architecture we do not handle
  | 'config' // config.json disagrees with the tensors, or is invalid
  | 'not-found' // no such file, tensor or model
  | 'validation' // a request's arguments are wrong
  | 'cancelled' // the user cancelled a job
  | 'io' // the OS refused (permissions, disk full)
  | 'out-of-memory' // the kernels' shared memory cannot hold what the work needs
  | 'kernel' // a compute kernel or its worker thread failed (a trap, a crash, a kill)
  | 'requantize' // the source is already quantized and re-quantizing it was not allowed (--allow-requantize)

export class WhittleError extends Error {
  readonly code: ErrorCode
  readonly file: string | null

  constructor(code: ErrorCode, file: string | null, problem: string) {
    super(file ? `${file}: ${problem}` : problem)
    this.name = 'WhittleError'
    this.code = code
    this.file = file
  }
}

export function formatError(file: string, problem: string): WhittleError {
  return new WhittleError('format', file, problem)
}

export function isWhittleError(e: unknown): e is WhittleError {
  return e instanceof WhittleError
}

/** Whether `e` is running out of memory (kernel memory, usually): the failure a slower path can answer. */
export function isOutOfMemory(e: unknown): boolean {
  return e instanceof WhittleError && e.code === 'out-of-memory'
}

/**
 * The engine's typed error for a failure thrown by kernels/ (which has its own small error type, being a
 * leaf below the engine): a kernel given impossible arguments is a 'validation' error. Anything else is
 * returned as it is. Applied where kernel code is called from the engine and at the contract boundary.
 */
export function fromKernelError(e: unknown): unknown {
  return e instanceof KernelArgumentError ? new WhittleError('validation', null, e.message) : e
}

/** One readable line for any thrown value. */
export function describeError(e: unknown): string {
  if (e instanceof Error) return e.message
  return String(e)
}

/**
 * A value read from a file, shown in an error message: JSON, cut to `max` characters. String() and
 * JSON.stringify recurse, so a deeply nested array from a hostile file would overflow the stack while the
 * message is being built; that, too, becomes a short description.
 */
export function showValue(v: unknown, max = 80): string {
  let s: string
  try {
    s = JSON.stringify(v) ?? String(v)
  } catch {
    s = Array.isArray(v) ? '(a deeply nested array)' : `(a deeply nested ${typeof v})`
  }
  return s.length > max ? `${s.slice(0, max)}…` : s
}
