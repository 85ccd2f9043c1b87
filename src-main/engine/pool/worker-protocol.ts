// Messages between the engine's worker pool (worker-pool.ts) and its workers (pool-worker.ts). Only
// numbers cross threads: the data lives in the shared kernel memory.

import type { RangeRead, ReadFailure } from '../io/read-sync'

/** One kernel call: its export name, then its arguments (pointers, sizes, scalars). */
export type KernelCall = [name: string, ...args: number[]]

/** What each worker gets as workerData. */
export interface WorkerInit {
  module: WebAssembly.Module
  memory: WebAssembly.Memory
}

/**
 * A file range copied to kernel memory before the calls; the descriptor is this process's (threads
 * share them).
 */
export type FileRead = RangeRead

/** Read (if asked), then run these calls in order; reply once when all are done or one fails. */
export interface WorkerRequest {
  id: number
  calls: KernelCall[]
  read?: FileRead
}

export type WorkerReply =
  /**
   * results[i]: what call i returned, 0 for a kernel that returns nothing; present only when some call
   * returned a value (cholesky_lower's failed column), so most replies stay two fields.
   */
  | { id: number; ok: true; results?: number[] }
  /**
   * `kernel`: the name of the call that failed, when the failure was inside one; `read`: set instead
   * when the request's read failed (no call ran).
   */
  | { id: number; ok: false; error: string; kernel?: string; read?: ReadFailure }
