// A sequential writer that writes around the page cache (direct-io.ts): chunks of any size are copied
// into one of two aligned buffers, and each full buffer is written while the other one fills, so the
// copy and the device's write overlap and the producer's chunk may be reused as soon as write() returns.
// The file's last, partial buffer is written padded to the alignment and the file then cut to its
// length. Should the device refuse a direct write after all (an alignment it wants larger), the rest
// goes through an ordinary handle on the same file: same bytes, through the page cache.

import { open, type FileHandle } from 'node:fs/promises'
import { alignUp, alignedBuffers, createDirect, directRefused } from './direct-io'
import { ioError } from './ranged-file'

/** Bytes of each of the two buffers: large writes, few syscalls, 32 MiB in all. */
export const DIRECT_WRITE_BYTES = 16 << 20

export class DirectWriter {
  /** Bytes accepted so far (written, in flight or buffered). */
  written = 0
  private handle: FileHandle
  private readonly direct: FileHandle
  private readonly temp: string
  /** The file's name in errors (the real name, not the temporary's). */
  private readonly path: string
  private readonly buffers: Uint8Array[]
  /** Each buffer's write in flight, if any: the buffer is not touched until it has settled. */
  private readonly inFlight: (Promise<void> | null)[]
  private current = 0
  /** Bytes in the current buffer. */
  private fill = 0
  /** File offset of the current buffer's first byte: a multiple of the buffer size (so of the alignment). */
  private position = 0
  private fallback: Promise<FileHandle> | null = null

  private constructor(handle: FileHandle, temp: string, path: string, buffers: Uint8Array[]) {
    this.handle = handle
    this.direct = handle
    this.temp = temp
    this.path = path
    this.buffers = buffers
    this.inFlight = buffers.map(() => null)
  }

  /**
   * Creates `temp` (which must not exist) for direct writing; null where direct I/O is not available
   * (then nothing was created). `path` names the file in errors.
   */
  static async create(temp: string, path: string, bufferBytes = DIRECT_WRITE_BYTES): Promise<DirectWriter | null> {
    const buffers = alignedBuffers(2, bufferBytes)
    if (!buffers) return null
    const handle = await createDirect(temp)
    return handle ? new DirectWriter(handle, temp, path, buffers) : null
  }

  /** Whether every write so far went around the page cache (false once a write fell back). */
  get isDirect(): boolean {
    return this.fallback === null
  }

  async write(chunk: Uint8Array): Promise<void> {
    this.written += chunk.length
    const size = this.buffers[0].length
    for (let from = 0; from < chunk.length;) {
      const n = Math.min(chunk.length - from, size - this.fill)
      this.buffers[this.current].set(chunk.subarray(from, from + n), this.fill)
      this.fill += n
      from += n
      if (this.fill === size) await this.submitFull()
    }
  }

  /**
   * Writes everything accepted so far and cuts the file to that length. More writes may follow: they
   * continue in the partial buffer, which is written again, whole, when it fills.
   */
  async flush(): Promise<void> {
    await this.settle()
    if (this.fill > 0) {
      const buffer = this.buffers[this.current]
      const padded = Math.min(alignUp(this.fill), buffer.length)
      buffer.fill(0, this.fill, padded)
      await this.writeAt(buffer, padded, this.position)
    }
    try {
      await this.handle.truncate(this.written)
    } catch (e) {
      throw ioError(this.path, e, 'truncate')
    }
  }

  /** fsync: the file's data (whichever handle wrote it) and size reach the disk. */
  async sync(): Promise<void> {
    try {
      await this.direct.sync()
    } catch (e) {
      throw ioError(this.path, e, 'flushing to disk')
    }
  }

  /** Closes the file once no write is in flight; errors of writes nobody awaited any more are dropped. */
  async close(): Promise<void> {
    await Promise.allSettled(this.inFlight.map((p) => p ?? Promise.resolve()))
    const fallback = this.fallback ? await this.fallback.catch(() => null) : null
    await fallback?.close()
    await this.direct.close()
  }

  /** Waits for every write in flight, rethrowing the first failure. */
  private async settle(): Promise<void> {
    for (let i = 0; i < this.inFlight.length; i++) {
      const p = this.inFlight[i]
      this.inFlight[i] = null
      if (p) await p
    }
  }

  /** Starts writing the full current buffer and moves to the other one, once its own write is done. */
  private async submitFull(): Promise<void> {
    const buffer = this.buffers[this.current]
    const write = this.writeAt(buffer, buffer.length, this.position)
    write.catch(() => {})
    this.inFlight[this.current] = write
    this.position += buffer.length
    this.fill = 0
    this.current = (this.current + 1) % this.buffers.length
    const before = this.inFlight[this.current]
    this.inFlight[this.current] = null
    if (before) await before
  }

  private async writeAt(bytes: Uint8Array, length: number, position: number): Promise<void> {
    let done = 0
    while (done < length) {
      const handle = this.handle
      try {
        const { bytesWritten } = await handle.write(bytes, done, length - done, position + done)
        done += bytesWritten
      } catch (e) {
        if (!directRefused(e) || handle !== this.direct) throw ioError(this.path, e, 'write')
        this.handle = await this.fallBack()
      }
    }
  }

  /** An ordinary handle on the same file, for the writes the device refused directly. */
  private fallBack(): Promise<FileHandle> {
    this.fallback ??= open(this.temp, 'r+')
    return this.fallback.catch((e: unknown) => {
      throw ioError(this.path, e, 'open')
    })
  }
}
