// Synchronous positional reads, for threads that have nothing else to do while they wait: the pool's
// workers read a chunk into kernel memory just before they compute on it (pool/pool-worker.ts), so the
// bytes arrive in the cache of the core that uses them and the copies from the page cache are spread
// over the workers instead of queuing on the main thread's I/O threads.

import { readSync } from 'node:fs'

/** Why a read failed: the file ended first, or the system refused the read. */
export type ReadFailure = 'truncated' | 'io'

export type ReadOutcome = { ok: true } | { ok: false; failure: ReadFailure; message: string }

/** Bytes [position, position + length) of the open descriptor `fd`, to go at byte `ptr` of a memory. */
export interface RangeRead {
  fd: number
  position: number
  length: number
  ptr: number
}

/**
 * Copies `read`'s range into `memory` (a WebAssembly memory's buffer) at read.ptr. A request whose numbers
 * are not non-negative integers, or that would write past the memory, is refused as an I/O failure.
 */
export function readIntoMemory(memory: ArrayBufferLike, read: RangeRead): ReadOutcome {
  const { fd, position, length, ptr } = read
  if (![fd, position, length, ptr].every((n) => Number.isSafeInteger(n) && n >= 0) || ptr + length > memory.byteLength)
    return { ok: false, failure: 'io', message: 'malformed read request' }
  return readFullySync(fd, position, new Uint8Array(memory, ptr, length))
}

/** Fills `into` from `position` of the open descriptor `fd`, looping over short reads. */
export function readFullySync(fd: number, position: number, into: Uint8Array): ReadOutcome {
  let done = 0
  while (done < into.length) {
    let bytesRead: number
    try {
      bytesRead = readSync(fd, into, done, into.length - done, position + done)
    } catch (e) {
      return { ok: false, failure: 'io', message: `read failed: ${e instanceof Error ? e.message : String(e)}` }
    }
    if (bytesRead === 0) {
      return {
        ok: false,
        failure: 'truncated',
        message: `file ends at byte ${position + done}, but ${into.length} bytes were expected from byte ${position}`,
      }
    }
    done += bytesRead
  }
  return { ok: true }
}
