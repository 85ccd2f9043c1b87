// Verification of a written GGUF by hashing: each tensor's encoded bytes are hashed as the export hands
// them to the writer, and after writing the file is re-read and every tensor hashed again, at disk speed,
// instead of decoding it a second time. Equal bytes decode to equal values wherever a type's decoding is
// a pure function of its bytes (every ggml type the export writes); only a packing that is not
// byte-deterministic would need its decoded values compared as well, and the check says which was made.
// The hash is node:crypto's SHA-256: with the CPU's SHA extensions it runs as fast as a JS non-crypto
// hash here (about 0.6 GB/s per core), and it is in every Node build.

import { createHash } from 'node:crypto'
import { ggmlTypeByName } from '../../formats/ggml-types'
import { readTensorBytes } from '../../formats/read'
import type { TensorEntry } from '../../formats/types'

/** How a tensor of the written file was checked against what the export meant to write. */
export type TensorCheck =
  /** Its bytes, re-read from the file, hash to the hash of the bytes written. */
  | 'sha256'
  /** That, and its decoded values match the quantizer's own dequantization. */
  | 'sha256+decode'

/** Reads of the re-read pass: large, so the disk and the page cache see sequential reads, not small ones. */
const READ_BYTES = 32 << 20

export function hashBytes(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex')
}

/**
 * The check a tensor of `type` needs: a hash comparison for every ggml type (their decoders are pure
 * functions of the bytes, so equal bytes prove equal values); decoding as well for anything else.
 */
export function tensorCheck(type: string): TensorCheck {
  return ggmlTypeByName(type) ? 'sha256' : 'sha256+decode'
}

/**
 * The hash of a tensor's bytes as they are in its file: read in large chunks, the next chunk's read in
 * flight while the current one is hashed.
 */
export async function hashTensorOnDisk(entry: TensorEntry, readBytes: number = READ_BYTES): Promise<string> {
  const hash = createHash('sha256')
  const size = Math.max(1, Math.min(readBytes, entry.byteLength))
  const buffers = [new Uint8Array(size), new Uint8Array(size)]
  const read = (at: number, i: number): Promise<Uint8Array> =>
    readTensorBytes(entry, at, Math.min(size, entry.byteLength - at), buffers[i])
  let pending = entry.byteLength > 0 ? read(0, 0) : null
  for (let at = 0, i = 0; pending; i ^= 1) {
    const chunk = await pending
    at += chunk.byteLength
    // The other buffer is free: the chunk hashed before it has been fully consumed.
    pending = at < entry.byteLength ? read(at, i ^ 1) : null
    hash.update(chunk)
  }
  return hash.digest('hex')
}
