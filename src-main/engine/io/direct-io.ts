// Direct (unbuffered) file I/O where the OS offers it (Linux's O_DIRECT): reads and writes go between the
// process's buffers and the device without passing through the page cache. A large export written
// through the page cache costs a fresh page per 4 KiB on top of the copy (on a VM whose freed memory goes
// back to the host, every one of them faults in again), and its read-back would then check the cache,
// not the disk. Direct I/O needs the buffer's address, the file offset and the length to be multiples of
// the device's block size; DIRECT_ALIGNMENT covers every common one. Where direct I/O is missing (macOS,
// Windows, a filesystem that refuses it), callers fall back to ordinary buffered I/O: same bytes, slower.

import { constants } from 'node:fs'
import { open, unlink, type FileHandle } from 'node:fs/promises'
import { WhittleError } from '../errors'
import { ioError } from './ranged-file'

/** Alignment of direct I/O's buffers, offsets and lengths: a page, and a multiple of any sector size. */
export const DIRECT_ALIGNMENT = 4096

/** WebAssembly memory comes in pages of this size, each starting on a page boundary of the process. */
const WASM_PAGE_BYTES = 65536

/** `bytes` rounded up to DIRECT_ALIGNMENT. */
export function alignUp(bytes: number): number {
  return Math.ceil(bytes / DIRECT_ALIGNMENT) * DIRECT_ALIGNMENT
}

/** `bytes` rounded down to DIRECT_ALIGNMENT. */
export function alignDown(bytes: number): number {
  return Math.floor(bytes / DIRECT_ALIGNMENT) * DIRECT_ALIGNMENT
}

/**
 * `count` buffers of `bytes` each, each starting on a page boundary, or null where none can be had.
 * JavaScript gives no address to check, but a WebAssembly memory is mapped whole by the engine, so it
 * starts on a page boundary; the buffers are slices of one, each at a multiple of 64 KiB.
 */
export function alignedBuffers(count: number, bytes: number): Uint8Array[] | null {
  if (count < 1 || bytes < 1) return null
  const slot = Math.ceil(bytes / WASM_PAGE_BYTES) * WASM_PAGE_BYTES
  try {
    const pages = (count * slot) / WASM_PAGE_BYTES
    const memory = new WebAssembly.Memory({ initial: pages, maximum: pages })
    return Array.from({ length: count }, (_, i) => new Uint8Array(memory.buffer, i * slot, bytes))
  } catch {
    // Out of address space (e.g. a ulimit -v): buffered I/O does without.
    return null
  }
}

/** Whether an error says direct I/O is not possible here (the filesystem, or an alignment it wants). */
export function directRefused(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException | null)?.code
  return code === 'EINVAL' || code === 'EOPNOTSUPP' || code === 'ENOTSUP'
}

/** The O_DIRECT flag, or null on a platform without it. */
function directFlag(): number | null {
  const flag = (constants as { O_DIRECT?: number }).O_DIRECT
  return typeof flag === 'number' && flag !== 0 ? flag : null
}

/**
 * Creates `path` (which must not exist) for direct writing. Null when direct I/O is not available there;
 * any other error (the folder is missing, no permission) is thrown as the OS reported it.
 */
export async function createDirect(path: string): Promise<FileHandle | null> {
  const direct = directFlag()
  if (direct === null) return null
  try {
    return await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | direct, 0o666)
  } catch (e) {
    if (!directRefused(e)) throw e
    // Linux refuses O_DIRECT only after O_CREAT made the file: it is ours (O_EXCL), so remove it.
    await unlink(path).catch(() => {})
    return null
  }
}

/** Opens `path` for direct reading, or null when direct I/O is not available there. */
export async function openDirectForReading(path: string): Promise<FileHandle | null> {
  const direct = directFlag()
  if (direct === null) return null
  try {
    return await open(path, constants.O_RDONLY | direct)
  } catch (e) {
    if (directRefused(e)) return null
    throw ioError(path, e, 'open')
  }
}

/**
 * Reads `length` bytes at `position` (a multiple of DIRECT_ALIGNMENT) of a handle opened for direct reading
 * into `into` (from alignedBuffers, at least alignUp(length) long), as whole aligned blocks: the part past
 * `length` is whatever the file holds there. Throws 'truncated' when the file ends first; a refusal of
 * direct I/O (directRefused) is thrown as it is, for the caller to read another way.
 */
export async function readAligned(
  handle: FileHandle,
  path: string,
  position: number,
  length: number,
  into: Uint8Array,
): Promise<Uint8Array> {
  const request = alignUp(length)
  if (position % DIRECT_ALIGNMENT !== 0 || into.length < request)
    throw new WhittleError('validation', path, `direct read of ${length} bytes at ${position} is not aligned`)
  let done = 0
  while (done < length) {
    let bytesRead: number
    try {
      ;({ bytesRead } = await handle.read(into, done, request - done, position + done))
    } catch (e) {
      if (directRefused(e)) throw e
      throw ioError(path, e, 'read')
    }
    if (bytesRead === 0)
      throw new WhittleError(
        'truncated',
        path,
        `file ends at byte ${position + done}, but ${length} bytes were expected from byte ${position}`,
      )
    done += bytesRead
  }
  return into.subarray(0, length)
}
