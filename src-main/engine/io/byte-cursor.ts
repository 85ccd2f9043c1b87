// A forward cursor over a file that keeps only a window of it in memory and refills from disk.
// Header parsers (GGUF metadata can hold hundreds of thousands of strings) use it to walk a file without
// reading it whole. Every length the file claims must be checked with `remaining()` before `ensure()`, so
// no buffer is ever sized by a number taken from the file rather than by the file's real size.

import type { FileHandle } from 'node:fs/promises'
import { WhittleError } from '../errors'
import { readFully } from './ranged-file'

export const DEFAULT_WINDOW = 1 << 20

export class FileCursor {
  readonly path: string
  readonly size: number
  private readonly handle: FileHandle
  private readonly window: number
  private buf: Uint8Array = new Uint8Array(0)
  private view: DataView = new DataView(new ArrayBuffer(0))
  /** File position of buf[0]. */
  private bufStart = 0
  /** Index into buf of the cursor. */
  private at = 0

  constructor(handle: FileHandle, path: string, size: number, start = 0, window = DEFAULT_WINDOW) {
    this.handle = handle
    this.path = path
    this.size = size
    this.window = window
    this.bufStart = start
  }

  get position(): number {
    return this.bufStart + this.at
  }

  remaining(): number {
    return this.size - this.position
  }

  /** Throws 'truncated' unless `n` more bytes exist in the file; `what` names the field for the message. */
  require(n: number, what: string): void {
    if (n > this.remaining()) {
      throw new WhittleError(
        'truncated',
        this.path,
        `${what} needs ${n} bytes at offset ${this.position}, but the file ends after ${this.remaining()}`,
      )
    }
  }

  /** Makes `n` bytes from the cursor available to the sync getters. */
  async ensure(n: number, what: string): Promise<void> {
    if (this.buf.length - this.at >= n) return
    this.require(n, what)
    const pos = this.position
    const length = Math.min(Math.max(n, this.window), this.size - pos)
    const next = length <= this.buf.length ? this.buf : new Uint8Array(length)
    // Keep the unread tail: copy it to the front, then fill the rest from disk.
    const keep = this.buf.length - this.at
    // TypedArray.set copies correctly even when source and target share the buffer.
    if (keep > 0) next.set(this.buf.subarray(this.at, this.at + keep), 0)
    await readFully(this.handle, this.path, pos + keep, next.subarray(keep, length))
    this.buf = next.subarray(0, length)
    this.view = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength)
    this.bufStart = pos
    this.at = 0
  }

  /** Advances `n` bytes without reading them (the caller checks `remaining()` first). */
  skip(n: number, what: string): void {
    this.require(n, what)
    const inBuf = this.buf.length - this.at
    if (n <= inBuf) {
      this.at += n
      return
    }
    this.bufStart = this.position + n
    this.buf = new Uint8Array(0)
    this.view = new DataView(this.buf.buffer)
    this.at = 0
  }

  u8(): number {
    return this.buf[this.at++]
  }
  i8(): number {
    return this.view.getInt8(this.at++)
  }
  u16(): number {
    const v = this.view.getUint16(this.at, true)
    this.at += 2
    return v
  }
  i16(): number {
    const v = this.view.getInt16(this.at, true)
    this.at += 2
    return v
  }
  u32(): number {
    const v = this.view.getUint32(this.at, true)
    this.at += 4
    return v
  }
  i32(): number {
    const v = this.view.getInt32(this.at, true)
    this.at += 4
    return v
  }
  u64(): bigint {
    const v = this.view.getBigUint64(this.at, true)
    this.at += 8
    return v
  }
  i64(): bigint {
    const v = this.view.getBigInt64(this.at, true)
    this.at += 8
    return v
  }
  f32(): number {
    const v = this.view.getFloat32(this.at, true)
    this.at += 4
    return v
  }
  f64(): number {
    const v = this.view.getFloat64(this.at, true)
    this.at += 8
    return v
  }

  /** A view of the next `n` buffered bytes (valid until the next `ensure`); call `ensure(n)` first. */
  take(n: number): Uint8Array {
    const out = this.buf.subarray(this.at, this.at + n)
    this.at += n
    return out
  }
}
