// Verification of a written GGUF by hashing: each tensor's encoded bytes are hashed as the export hands
// them to the writer, and after writing the file is re-read in one sequential pass and every tensor hashed
// again, at disk speed, instead of decoding it a second time. The export writes and re-reads around the
// page cache where the OS allows it (io/direct-io.ts), so the re-read bytes come from the disk. Equal bytes decode to equal values wherever
// a type's decoding is a pure function of its bytes (every ggml type the export writes); only a packing
// that is not byte-deterministic would need its decoded values compared as well, and the check says which
// was made.
// The hash is CRC-32 (node:zlib, SIMD-accelerated: about twice SHA-256's speed here, on the main thread).
// It guards the write and the re-read against accidental change, not an adversary: every burst of up to
// 32 bits is caught, and a random corruption is missed with probability 2^-32 per tensor.

import { crc32 } from 'node:zlib'
import { WhittleError } from '../../errors'
import { ggmlTypeByName } from '../../formats/ggml-types'
import { readTensorBytes } from '../../formats/read'
import type { TensorEntry } from '../../formats/types'
import {
  alignDown,
  alignUp,
  alignedBuffers,
  directRefused,
  openDirectForReading,
  readAligned,
} from '../../io/direct-io'
import { readRange } from '../../io/ranged-file'

/** The hash's name, as reports and the `verified` line print it. */
export const TENSOR_HASH_NAME = 'CRC-32'

/** How a tensor of the written file was checked against what the export meant to write. */
export type TensorCheck =
  /** Its bytes, re-read from the file, hash to the hash of the bytes written. */
  | 'crc32'
  /** That, and its decoded values match the quantizer's own dequantization. */
  | 'crc32+decode'

/** Reads of the re-read pass: large, so the disk and the page cache see sequential reads, not small ones. */
const READ_BYTES = 16 << 20

/** The hash of `data`, or of the bytes hashed so far followed by `data` when `previous` is their hash. */
export function hashBytes(data: Uint8Array, previous = 0): number {
  return crc32(data, previous)
}

/**
 * The check a tensor of `type` needs: a hash comparison for every ggml type (their decoders are pure
 * functions of the bytes, so equal bytes prove equal values); decoding as well for anything else.
 */
export function tensorCheck(type: string): TensorCheck {
  return ggmlTypeByName(type) ? 'crc32' : 'crc32+decode'
}

/** A tensor's bytes within a file. */
export interface ByteSpan {
  offset: number
  byteLength: number
}

/**
 * The hash of each span's bytes in `file`, in one sequential pass: large reads into two reused buffers,
 * the next read in flight while the current chunk is hashed. Spans must be in file order and not overlap
 * (a GGUF's tensors are); the bytes between them are read past, never hashed. With `direct`, the reads go
 * around the page cache where the OS allows it (io/direct-io.ts): a file just written around the cache is
 * then read from the disk, not pulled into the cache page by page; elsewhere they are ordinary reads.
 */
export async function hashSpansOnDisk(
  file: string,
  spans: readonly ByteSpan[],
  readBytes: number = READ_BYTES,
  options: { direct?: boolean } = {},
): Promise<number[]> {
  if (spans.length === 0) return []
  for (let i = 1; i < spans.length; i++) {
    if (spans[i].offset < spans[i - 1].offset + spans[i - 1].byteLength)
      throw new WhittleError('validation', file, `byte span ${i} overlaps or precedes the span before it`)
  }
  const start = spans[0].offset
  const end = spans[spans.length - 1].offset + spans[spans.length - 1].byteLength
  if (options.direct && end > start) {
    const hashes = await hashSpansDirect(file, spans, start, end, readBytes)
    if (hashes) return hashes
  }
  const size = Math.max(1, Math.min(readBytes, end - start))
  const buffers = [new Uint8Array(size), new Uint8Array(size)]
  return hashChunks(spans, start, end, size, (at, i) => readRange(file, at, Math.min(size, end - at), buffers[i]))
}

/** hashSpansOnDisk's direct pass, from the aligned offset at or before `start`; null where it is refused. */
async function hashSpansDirect(
  file: string,
  spans: readonly ByteSpan[],
  start: number,
  end: number,
  readBytes: number,
): Promise<number[] | null> {
  const from = alignDown(start)
  const size = Math.min(alignUp(Math.max(1, readBytes)), alignUp(end - from))
  const buffers = alignedBuffers(2, size)
  const handle = buffers ? await openDirectForReading(file) : null
  if (!buffers || !handle) return null
  try {
    return await hashChunks(spans, from, end, size, (at, i) =>
      readAligned(handle, file, at, Math.min(size, end - at), buffers[i]),
    )
  } catch (e) {
    if (directRefused(e)) return null
    throw e
  } finally {
    await handle.close().catch(() => {})
  }
}

/**
 * Hashes the spans' bytes from chunks read in order from `start` to `end`, `size` bytes each, by `read`
 * into alternating buffers (0, 1): the next read is in flight while the current chunk is hashed.
 */
async function hashChunks(
  spans: readonly ByteSpan[],
  start: number,
  end: number,
  size: number,
  read: (at: number, buffer: number) => Promise<Uint8Array>,
): Promise<number[]> {
  const hashes = spans.map(() => 0)
  let span = 0
  let pending = end > start ? read(start, 0) : null
  for (let at = start, i = 0; pending; i ^= 1) {
    const chunk = await pending
    const chunkStart = at
    at += chunk.byteLength
    // The other buffer is free: the chunk read into it has been hashed.
    pending = at < end ? read(at, i ^ 1) : null
    pending?.catch(() => {})
    // Hash the parts of the spans that fall in [chunkStart, at).
    while (span < spans.length && spans[span].offset < at) {
      const s = spans[span]
      const from = Math.max(s.offset, chunkStart)
      const to = Math.min(s.offset + s.byteLength, at)
      if (to > from) hashes[span] = crc32(chunk.subarray(from - chunkStart, to - chunkStart), hashes[span])
      if (s.offset + s.byteLength > at) break
      span++
    }
  }
  return hashes
}

/** The hash of one tensor's bytes as they are in its file (hashSpansOnDisk for a single span). */
export async function hashTensorOnDisk(entry: TensorEntry, readBytes: number = READ_BYTES): Promise<number> {
  if (entry.byteLength === 0) return hashBytes(new Uint8Array(0))
  // A tensor held in memory is hashed as it is.
  if (entry.data || entry.unpack) return hashBytes(await readTensorBytes(entry, 0, entry.byteLength))
  return (await hashSpansOnDisk(entry.file, [entry], readBytes))[0]
}
