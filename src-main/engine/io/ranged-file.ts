// Positional byte-range reads with a small cache of open file handles.
// Tensors are streamed in many chunks, often from the same few files, so reopening per chunk would cost a
// syscall pair per read; but a model can span hundreds of shards, so the cache is bounded. A handle is only
// closed once no read is using it, so eviction never breaks a read in flight.

import { open, type FileHandle } from 'node:fs/promises'
import { WhittleError } from '../errors'

/** Most handles kept open at once; extra ones are closed least-recently-used first. */
export const MAX_OPEN_FILES = 16

interface CachedHandle {
  path: string
  opening: Promise<FileHandle>
  users: number
  lastUse: number
  /** Set once evicted or closed explicitly: the handle closes when its last user leaves. */
  retired: boolean
}

const cache = new Map<string, CachedHandle>()
let clock = 0

/** Turns an fs error into a WhittleError naming the file. */
export function ioError(path: string, e: unknown, doing: string): WhittleError {
  if (e instanceof WhittleError) return e
  const code = (e as NodeJS.ErrnoException | null)?.code
  if (code === 'ENOENT') return new WhittleError('not-found', path, 'no such file')
  if (code === 'EISDIR') return new WhittleError('format', path, 'is a folder, not a file')
  const why = e instanceof Error ? e.message : String(e)
  return new WhittleError('io', path, `${doing} failed: ${why}`)
}

function closeQuietly(entry: CachedHandle): void {
  entry.opening.then((h) => h.close()).catch(() => {})
}

function evictIdle(): void {
  if (cache.size <= MAX_OPEN_FILES) return
  const idle = [...cache.values()].filter((c) => c.users === 0).sort((a, b) => a.lastUse - b.lastUse)
  for (const c of idle) {
    if (cache.size <= MAX_OPEN_FILES) break
    cache.delete(c.path)
    c.retired = true
    closeQuietly(c)
  }
}

function acquire(path: string): CachedHandle {
  let entry = cache.get(path)
  if (!entry) {
    const opening = open(path, 'r')
    entry = { path, opening, users: 0, lastUse: 0, retired: false }
    cache.set(path, entry)
    // A failed open must not stay cached: the next caller retries (the file may have appeared).
    const failed = entry
    opening.catch(() => {
      if (cache.get(path) === failed) cache.delete(path)
    })
  }
  entry.users++
  entry.lastUse = ++clock
  return entry
}

function release(entry: CachedHandle): void {
  entry.users--
  if (entry.users === 0 && entry.retired) closeQuietly(entry)
  else evictIdle()
}

/** Runs `use` with an open handle for `path`, from the cache. The handle must not escape `use`. */
export async function withFileHandle<T>(path: string, use: (handle: FileHandle) => Promise<T>): Promise<T> {
  const entry = acquire(path)
  try {
    let handle: FileHandle
    try {
      handle = await entry.opening
    } catch (e) {
      throw ioError(path, e, 'open')
    }
    return await use(handle)
  } finally {
    release(entry)
  }
}

/**
 * Drops the cached handle of `path` (closing it once idle). Call after a file is replaced on disk,
 * so later reads see the new file rather than the old inode.
 */
export function closeFile(path: string): void {
  const entry = cache.get(path)
  if (!entry) return
  cache.delete(path)
  entry.retired = true
  if (entry.users === 0) closeQuietly(entry)
}

/** Closes every cached handle (each once idle). */
export function closeAllFiles(): void {
  for (const path of [...cache.keys()]) closeFile(path)
}

/** Number of handles currently cached (for tests and diagnostics). */
export function openFileCount(): number {
  return cache.size
}

/**
 * Fills `into` from `position` of an open handle, looping over short reads.
 * Throws 'truncated' when the file ends first.
 */
export async function readFully(handle: FileHandle, path: string, position: number, into: Uint8Array): Promise<void> {
  let done = 0
  while (done < into.length) {
    let bytesRead: number
    try {
      ;({ bytesRead } = await handle.read(into, done, into.length - done, position + done))
    } catch (e) {
      throw ioError(path, e, 'read')
    }
    if (bytesRead === 0) {
      throw new WhittleError(
        'truncated',
        path,
        `file ends at byte ${position + done}, but ${into.length} bytes were expected from byte ${position}`,
      )
    }
    done += bytesRead
  }
}

/** Reads `length` bytes at `position` of `path` (into `into` when given, which must be large enough). */
export async function readRange(
  path: string,
  position: number,
  length: number,
  into?: Uint8Array,
): Promise<Uint8Array> {
  if (!Number.isSafeInteger(position) || position < 0 || !Number.isSafeInteger(length) || length < 0) {
    throw new WhittleError('validation', path, `invalid byte range ${position}+${length}`)
  }
  if (into && into.length < length) {
    throw new WhittleError('validation', path, `destination holds ${into.length} bytes, ${length} requested`)
  }
  const target = into ? into.subarray(0, length) : new Uint8Array(length)
  if (length === 0) return target
  await withFileHandle(path, (h) => readFully(h, path, position, target))
  return target
}

/** Size in bytes of an open file. */
export async function handleSize(handle: FileHandle, path: string): Promise<number> {
  try {
    return (await handle.stat()).size
  } catch (e) {
    throw ioError(path, e, 'stat')
  }
}
