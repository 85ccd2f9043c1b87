// Messages between the engine's worker pool and kernels/host/worker.ts. Only numbers cross threads:
// the data lives in the shared kernel memory.

/** One kernel call: its export name, then its arguments (pointers, sizes, scalars). */
export type KernelCall = [name: string, ...args: number[]]

/** What each worker gets as workerData. */
export interface WorkerInit {
  module: WebAssembly.Module
  memory: WebAssembly.Memory
}

/** Run these calls in order; reply once when all are done or one fails. */
export interface WorkerRequest {
  id: number
  calls: KernelCall[]
}

export type WorkerReply =
  | { id: number; ok: true }
  | { id: number; ok: false; error: string }
