// Verification of a written GGUF by hashing: each tensor's encoded bytes are hashed as the export
// produces them, and after writing the file is re-read in one sequential pass and every tensor hashed
// again, at disk speed, instead of decoding it a second time. The export writes and re-reads around the
// page cache where the OS allows it (io/direct-io.ts), so the re-read bytes come from the disk. Equal
// bytes decode to equal values wherever a type's decoding is a pure function of its bytes (every ggml
// type the export writes); only a packing that is not byte-deterministic would need its decoded values
// compared as well, and the check says which was made.
// The hash is CRC-32 (node:zlib's). With a worker pool, both hashes run on CRC threads over its kernel
// memory (crc-threads.ts, worker-crc.ts) in slices joined with crc32Combine, so the main thread only
// moves bytes; without one, zlib hashes on this thread (about 2.2 GB/s). It guards
// the write and the re-read against accidental change, not an adversary: every burst of up to 32 bits is
// caught, and a random corruption is missed with probability 2^-32 per tensor.

import { crc32 } from 'node:zlib'
import { WhittleError } from '../../errors'
import { ggmlTypeByName } from '../../formats/ggml-types'
import { readTensorBytes } from '../../formats/read'
import type { TensorEntry } from '../../formats/types'
import {
  DIRECT_ALIGNMENT,
  alignDown,
  alignUp,
  alignedBuffers,
  directRefused,
  openDirectForReading,
  readAligned,
} from '../../io/direct-io'
import { readRange } from '../../io/ranged-file'
import { crc32Combine } from '../../numerics/crc32-combine'
import type { WorkerPool } from '../../pool/worker-pool'
import { CrcThreads } from './crc-threads'
import { hashKernelMemory } from './worker-crc'

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

/** Where the re-read pass hashes: on this thread (node:zlib), or on a pool's workers. */
export interface HashSpansOptions {
  /** Read around the page cache where the OS allows it (io/direct-io.ts). */
  direct?: boolean
  /**
   * Read into this pool's kernel memory and hash there on CRC threads (crc-threads.ts): this thread then
   * only waits on the reads, and the threads hash one chunk while the next is read.
   */
  pool?: WorkerPool
  /** The CRC threads to hash on (over `pool`'s memory); without them, threads are started for the call. */
  crcThreads?: CrcThreads
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
  options: HashSpansOptions = {},
): Promise<number[]> {
  if (spans.length === 0) return []
  for (let i = 1; i < spans.length; i++) {
    if (spans[i].offset < spans[i - 1].offset + spans[i - 1].byteLength)
      throw new WhittleError('validation', file, `byte span ${i} overlaps or precedes the span before it`)
  }
  const start = spans[0].offset
  const end = spans[spans.length - 1].offset + spans[spans.length - 1].byteLength
  const pool = options.pool ?? null
  if (!pool) return hashSpans(file, spans, start, end, readBytes, options.direct ?? false, () => threadBuffers)
  const threads = options.crcThreads ?? new CrcThreads(pool)
  try {
    return await hashSpans(file, spans, start, end, readBytes, options.direct ?? false, (fallback) =>
      fallback ? threadBuffers : kernelMemoryBuffers(pool, threads),
    )
  } finally {
    if (!options.crcThreads) await threads.close()
  }
}

/**
 * hashSpansOnDisk's pass: direct where asked for and possible, else buffered; in buffers from `source`
 * (true: the fallback, this thread's memory, for when the first choice cannot have its buffers).
 */
async function hashSpans(
  file: string,
  spans: readonly ByteSpan[],
  start: number,
  end: number,
  readBytes: number,
  direct: boolean,
  source: (fallback: boolean) => BufferSource,
): Promise<number[]> {
  if (direct && end > start) {
    const hashes = await hashSpansDirect(file, spans, start, end, readBytes, source)
    if (hashes) return hashes
  }
  const size = Math.max(1, Math.min(readBytes, end - start))
  const buffers = source(false)(size, 0) ?? source(true)(size, 0)!
  try {
    const read = (at: number, i: number): Promise<Uint8Array> =>
      readRange(file, at, Math.min(size, end - at), buffers.views[i])
    return await hashChunks(spans, start, end, size, read, buffers.hash)
  } finally {
    buffers.release()
  }
}

/** A part of one span within a chunk: bytes [from, to) of the chunk. */
interface Piece {
  span: number
  from: number
  to: number
}

/** Two read buffers, and how the pieces of a chunk read into one of them are hashed (each from CRC 0). */
interface ChunkBuffers {
  views: Uint8Array[]
  hash(buffer: number, pieces: readonly Piece[]): Promise<number[]>
  release(): void
}

/** `bytes` each at `alignment` (0: any); null where none can be had. */
type BufferSource = (bytes: number, alignment: number) => ChunkBuffers | null

/** Buffers in this thread's memory (page-aligned ones from io/direct-io.ts), hashed here with node:zlib. */
const threadBuffers: BufferSource = (bytes, alignment) => {
  const views = alignment > 0 ? alignedBuffers(2, bytes) : [new Uint8Array(bytes), new Uint8Array(bytes)]
  if (!views) return null
  return {
    views,
    hash: async (buffer, pieces) => pieces.map((p) => crc32(views[buffer].subarray(p.from, p.to))),
    release: () => {},
  }
}

/**
 * Buffers in the pool's kernel memory, hashed on the CRC threads. A WebAssembly memory starts on a page
 * boundary, so an offset that is a multiple of the alignment is an aligned address.
 */
function kernelMemoryBuffers(pool: WorkerPool, threads: CrcThreads): BufferSource {
  return (bytes, alignment) => {
    const regions = pool.arena.tryAlloc([bytes + alignment, bytes + alignment], 're-read buffer')
    if (!regions) return null
    const ptrs = regions.map((r) => (alignment > 0 ? Math.ceil(r.ptr / alignment) * alignment : r.ptr))
    // Views made after both allocations (memory.grow replaces the buffer).
    const views = regions.map((r, i) => pool.arena.u8(r, ptrs[i] - r.ptr, bytes))
    return {
      views,
      hash: (buffer, pieces) =>
        Promise.all(pieces.map((p) => hashKernelMemory(threads, ptrs[buffer] + p.from, p.to - p.from))),
      release: () => {
        for (const r of regions) pool.arena.release(r)
      },
    }
  }
}

/** hashSpansOnDisk's direct pass, from the aligned offset at or before `start`; null where it is refused. */
async function hashSpansDirect(
  file: string,
  spans: readonly ByteSpan[],
  start: number,
  end: number,
  readBytes: number,
  source: (fallback: boolean) => BufferSource,
): Promise<number[] | null> {
  const from = alignDown(start)
  const size = Math.min(alignUp(Math.max(1, readBytes)), alignUp(end - from))
  const buffers = source(false)(size, DIRECT_ALIGNMENT) ?? source(true)(size, DIRECT_ALIGNMENT)
  if (!buffers) return null
  try {
    const handle = await openDirectForReading(file)
    if (!handle) return null
    try {
      return await hashChunks(
        spans,
        from,
        end,
        size,
        (at, i) => readAligned(handle, file, at, Math.min(size, end - at), buffers.views[i]),
        buffers.hash,
      )
    } catch (e) {
      if (directRefused(e)) return null
      throw e
    } finally {
      await handle.close().catch(() => {})
    }
  } finally {
    buffers.release()
  }
}

/**
 * Hashes the spans' bytes from chunks read in order from `start` to `end`, `size` bytes each, by `read`
 * into alternating buffers (0, 1): the next read is in flight while the current chunk is hashed (by
 * `hash`, each span's part from CRC 0, joined into the span's hash with crc32Combine).
 */
async function hashChunks(
  spans: readonly ByteSpan[],
  start: number,
  end: number,
  size: number,
  read: (at: number, buffer: number) => Promise<Uint8Array>,
  hash: ChunkBuffers['hash'],
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
    // The parts of the spans that fall in [chunkStart, at).
    const pieces: Piece[] = []
    while (span < spans.length && spans[span].offset < at) {
      const s = spans[span]
      const from = Math.max(s.offset, chunkStart)
      const to = Math.min(s.offset + s.byteLength, at)
      if (to > from) pieces.push({ span, from: from - chunkStart, to: to - chunkStart })
      if (s.offset + s.byteLength > at) break
      span++
    }
    const crcs = await hash(i, pieces)
    pieces.forEach((p, k) => {
      hashes[p.span] = crc32Combine(hashes[p.span], crcs[k] >>> 0, p.to - p.from)
    })
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
