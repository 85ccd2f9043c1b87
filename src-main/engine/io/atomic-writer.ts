// Writes a file through a temporary sibling that is renamed into place only once complete, so a crash or
// an error mid-write never leaves a half-written model under the real name. Small chunks are gathered into
// one large buffer before each write syscall, so producers can emit rows of any size.

import { randomBytes } from 'node:crypto'
import { open, rename, unlink, type FileHandle } from 'node:fs/promises'
import { basename, dirname, join, resolve } from 'node:path'
import { closeFile, ioError } from './ranged-file'

const FLUSH_BYTES = 4 << 20

export class SequentialWriter {
  private readonly handle: FileHandle
  private readonly path: string
  private pending: Uint8Array[] = []
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
    this.pending.push(chunk.slice())
    this.pendingBytes += chunk.length
    if (this.pendingBytes >= FLUSH_BYTES) await this.flush()
  }

  async flush(): Promise<void> {
    if (this.pendingBytes === 0) return
    const joined = new Uint8Array(this.pendingBytes)
    let at = 0
    for (const c of this.pending) {
      joined.set(c, at)
      at += c.length
    }
    this.pending = []
    this.pendingBytes = 0
    await this.writeOut(joined)
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

/**
 * Runs `produce` against a writer for a temporary file next to `path`, then renames it to `path`.
 * On any error the temporary file is removed and the error rethrown; `path` is untouched.
 */
export async function writeFileAtomically(target: string, produce: (w: SequentialWriter) => Promise<void>): Promise<number> {
  const path = resolve(target)
  const temp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`)
  let handle: FileHandle
  try {
    handle = await open(temp, 'wx')
  } catch (e) {
    throw ioError(path, e, 'create')
  }
  let ok = false
  try {
    const w = new SequentialWriter(handle, path)
    await produce(w)
    await w.flush()
    await handle.close()
    try {
      await rename(temp, path)
    } catch (e) {
      throw ioError(path, e, 'rename')
    }
    ok = true
    // Readers may hold a cached handle to the file this one replaced.
    closeFile(path)
    return w.written
  } finally {
    if (!ok) {
      await handle.close().catch(() => {})
      await unlink(temp).catch(() => {})
    }
  }
}
