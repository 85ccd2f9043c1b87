// Writes a file through a temporary sibling that gets the real name only once complete, flushed and
// (optionally) verified, so a crash or an error mid-write never leaves a half-written or unchecked model
// under the real name. Small chunks are gathered into one large buffer before each write syscall, so
// producers can emit rows of any size; that buffer is allocated once and reused. Large files (exports)
// may be written around the page cache instead (direct-writer.ts), where the OS allows it.

import { link, open, rename, unlink, type FileHandle } from 'node:fs/promises'
import { basename, dirname, resolve } from 'node:path'
import {
  LINK_UNSUPPORTED,
  alreadyExistsError,
  cannotWriteError,
  fsyncDirectory,
  pathExists,
  removeStaleLeftovers,
  reserveDestination,
  temporaryPathFor,
} from './destination-lock'
import { DirectWriter } from './direct-writer'
import { closeFile, ioError } from './ranged-file'

/** What a producer writes to: chunks in order, each awaited before the next. */
export interface SequentialWriter {
  /** Bytes accepted so far (written or buffered). */
  readonly written: number
  /** Accepts `chunk`; the producer may reuse the chunk's buffer once this resolves. */
  write(chunk: Uint8Array): Promise<void>
}

const FLUSH_BYTES = 4 << 20

/** Writes through the page cache, in order; one call at a time (each awaited before the next). */
class BufferedWriter implements SequentialWriter {
  private readonly handle: FileHandle
  private readonly path: string
  /** Small chunks gathered for the next write: one buffer, reused (fresh pages cost a fault each). */
  private staging: Uint8Array | null = null
  private pendingBytes = 0
  /** Bytes accepted so far (written or buffered). */
  written = 0

  constructor(handle: FileHandle, path: string) {
    this.handle = handle
    this.path = path
  }

  async write(chunk: Uint8Array): Promise<void> {
    if (chunk.length === 0) return
    this.written += chunk.length
    if (chunk.length >= FLUSH_BYTES) {
      await this.flush()
      await this.writeOut(chunk)
      return
    }
    // Producers may reuse their chunk buffer after we return, so keep a copy.
    if (this.pendingBytes + chunk.length > FLUSH_BYTES) await this.flush()
    this.staging ??= new Uint8Array(FLUSH_BYTES)
    this.staging.set(chunk, this.pendingBytes)
    this.pendingBytes += chunk.length
    if (this.pendingBytes >= FLUSH_BYTES) await this.flush()
  }

  async flush(): Promise<void> {
    if (this.pendingBytes === 0 || !this.staging) return
    const bytes = this.pendingBytes
    this.pendingBytes = 0
    // The staging buffer is not touched again until this write has completed (callers await it).
    await this.writeOut(this.staging.subarray(0, bytes))
  }

  async sync(): Promise<void> {
    try {
      await this.handle.sync()
    } catch (e) {
      throw ioError(this.path, e, 'flushing to disk')
    }
  }

  async close(): Promise<void> {
    await this.handle.close()
  }

  private async writeOut(bytes: Uint8Array): Promise<void> {
    let done = 0
    while (done < bytes.length) {
      try {
        const { bytesWritten } = await this.handle.write(bytes, done, bytes.length - done)
        done += bytesWritten
      } catch (e) {
        throw ioError(this.path, e, 'write')
      }
    }
  }
}

export interface AtomicWriteOptions {
  /**
   * Never replace: reserve the destination first (a second writer fails with "being written by another
   * export"), refuse one that exists, and put the file in place with link(), which cannot overwrite.
   * Exports use this; without it the file replaces whatever is at the path (fixtures, caches).
   */
  exclusive?: boolean
  /** Checks the complete, flushed temporary file; only if it passes does the file get its real name. */
  verify?: (tempPath: string) => Promise<void>
  /**
   * Write around the page cache where the OS allows it (direct-writer.ts): for files of gigabytes, whose
   * pages would only crowd the cache. Same bytes either way; where direct I/O is refused, it is not used.
   */
  direct?: boolean
}

/** Creates `temp` and a writer for it: direct when asked and possible, else through the page cache. */
async function createWriter(temp: string, path: string, direct: boolean): Promise<DirectWriter | BufferedWriter> {
  const dir = dirname(path)
  try {
    const directWriter = direct ? await DirectWriter.create(temp, path) : null
    if (directWriter) return directWriter
    return new BufferedWriter(await open(temp, 'wx'), path)
  } catch (e) {
    throw await cannotWriteError(dir, e)
  }
}

/**
 * Runs `produce` against a writer for a temporary file next to `path`, flushes it to disk, verifies it,
 * then gives it the real name and flushes the folder, so the file survives a power loss once this
 * returns. On any error the temporary file is removed and the error rethrown; `path` is untouched.
 * Temporaries that killed writers left beside `path` are removed first.
 */
export async function writeFileAtomically(
  target: string,
  produce: (w: SequentialWriter) => Promise<void>,
  options: AtomicWriteOptions = {},
): Promise<number> {
  const path = resolve(target)
  const dir = dirname(path)
  const lock = options.exclusive ? await reserveDestination(path) : null
  try {
    if (lock && (await pathExists(path))) throw alreadyExistsError(path, 'file')
    await removeStaleLeftovers(dir, basename(path))
    const temp = temporaryPathFor(path)
    const w = await createWriter(temp, path, options.direct ?? false)
    let closed = false
    let placed = false
    try {
      await produce(w)
      await w.flush()
      await w.sync()
      await w.close()
      closed = true
      if (options.verify) {
        try {
          await options.verify(temp)
        } finally {
          closeFile(temp)
        }
      }
      if (lock) await placeWithoutReplacing(temp, path)
      else {
        try {
          await rename(temp, path)
        } catch (e) {
          throw ioError(path, e, 'rename')
        }
      }
      placed = true
      await fsyncDirectory(dir)
      // Readers may hold a cached handle to the file this one replaced.
      closeFile(path)
      return w.written
    } finally {
      if (!closed) await w.close().catch(() => {})
      if (!placed) await unlink(temp).catch(() => {})
    }
  } finally {
    await lock?.release()
  }
}

/**
 * Gives `temp` the name `path` only if nothing has it: link() fails rather than overwrite. Where the
 * filesystem has no hard links, the destination lock (held by the caller) keeps other exports out, and
 * a last check keeps out everything else but a writer that ignores locks in the instant before rename.
 */
async function placeWithoutReplacing(temp: string, path: string): Promise<void> {
  try {
    await link(temp, path)
    // The file is in place; a second name left by a failed unlink is removed as a stale temporary later.
    await unlink(temp).catch(() => {})
    return
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    if (code === 'EEXIST') throw alreadyExistsError(path, 'file')
    if (!LINK_UNSUPPORTED.has(code ?? '')) throw ioError(path, e, 'link')
  }
  if (await pathExists(path)) throw alreadyExistsError(path, 'file')
  try {
    await rename(temp, path)
  } catch (e) {
    throw ioError(path, e, 'rename')
  }
}
