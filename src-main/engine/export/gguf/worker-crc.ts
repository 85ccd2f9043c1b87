// CRC-32 of bytes in kernel memory, computed off the main thread (crc-threads.ts) in slices: a range is
// cut into one slice per thread, each slice hashed from CRC 0, and the slices' CRCs joined in order with
// crc32Combine (numerics/crc32-combine.ts), which gives exactly the CRC-32 of the whole. The export hashes
// what it writes this way, and the verification what it re-reads (tensor-hashes.ts), so the main thread
// only moves bytes.

import { crc32Combine } from '../../numerics/crc32-combine'
import type { CrcThreads } from './crc-threads'

/** Slices are at least this long: below it one more message costs more than it saves. */
const MIN_SLICE_BYTES = 256 << 10

/** A byte range and the CRC-32 of its bytes (from CRC 0). */
export interface HashedSlice {
  bytes: number
  crc: number
}

/** The slices' CRCs joined in order into the CRC-32 of their concatenation, continuing from `previous`. */
export function joinCrcs(slices: readonly HashedSlice[], previous = 0): number {
  let crc = previous >>> 0
  for (const s of slices) crc = crc32Combine(crc, s.crc >>> 0, s.bytes)
  return crc
}

/** CRC-32 of the `bytes` bytes at `ptr` of kernel memory, hashed in slices across the threads. */
export async function hashKernelMemory(threads: CrcThreads, ptr: number, bytes: number): Promise<number> {
  const parts = Math.max(1, Math.min(threads.count, Math.floor(bytes / MIN_SLICE_BYTES)))
  const per = Math.ceil(bytes / parts)
  const slices: Promise<HashedSlice>[] = []
  for (let at = 0; at < bytes; at += per) {
    const n = Math.min(per, bytes - at)
    slices.push(threads.hash(ptr + at, n).then((crc) => ({ bytes: n, crc })))
  }
  return joinCrcs(await Promise.all(slices))
}
