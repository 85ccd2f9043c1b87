// Kernel calls on a range of a tensor's bytes that the worker running them reads into kernel memory
// first (io/read-sync.ts says why). Tensors held in memory (entry.data, unpacked containers) are copied
// there on this thread instead.

import type { TensorEntry } from '../formats/types'
import { checkTensorRange, readTensorBytes } from '../formats/read'
import { withFileHandle } from '../io/ranged-file'
import type { KernelCall, RunOptions, WorkerPool } from './worker-pool'

/**
 * Copies bytes [byteStart, byteStart + byteLength) of the tensor's data to kernel memory at `ptr`, then
 * runs `calls` on one worker.
 */
export async function readThenRun(
  pool: WorkerPool,
  entry: TensorEntry,
  byteStart: number,
  byteLength: number,
  ptr: number,
  calls: KernelCall[],
  options: Omit<RunOptions, 'read'> = {},
): Promise<void> {
  checkTensorRange(entry, byteStart, byteLength)
  if (entry.data || entry.unpack || byteLength === 0) {
    await readTensorBytes(entry, byteStart, byteLength, new Uint8Array(pool.memory.buffer, ptr, byteLength))
    if (calls.length > 0) await pool.run(calls, options)
    return
  }
  // The handle stays open until the run settles: a cancelled or failed run settles only once its worker
  // has stopped.
  await withFileHandle(entry.file, (handle) =>
    pool.run(calls, {
      ...options,
      read: { file: entry.file, fd: handle.fd, position: entry.offset + byteStart, length: byteLength, ptr },
    }),
  )
}
