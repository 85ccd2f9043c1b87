// A growable little-endian byte buffer, for headers that are assembled in memory before being written
// (GGUF metadata, safetensors JSON) and for tests that build deliberately malformed files byte by byte.

const utf8 = new TextEncoder()

export class ByteBuilder {
  private buf = new Uint8Array(256)
  private view = new DataView(this.buf.buffer)
  private length = 0

  get size(): number {
    return this.length
  }

  private reserve(n: number): number {
    const at = this.length
    if (at + n > this.buf.length) {
      let cap = this.buf.length * 2
      while (cap < at + n) cap *= 2
      const next = new Uint8Array(cap)
      next.set(this.buf.subarray(0, at))
      this.buf = next
      this.view = new DataView(next.buffer)
    }
    this.length += n
    return at
  }

  // Each setter reserves before touching the view: reserve() may replace the buffer and its view.
  u8(v: number): this {
    const at = this.reserve(1)
    this.view.setUint8(at, v)
    return this
  }
  i8(v: number): this {
    const at = this.reserve(1)
    this.view.setInt8(at, v)
    return this
  }
  u16(v: number): this {
    const at = this.reserve(2)
    this.view.setUint16(at, v, true)
    return this
  }
  i16(v: number): this {
    const at = this.reserve(2)
    this.view.setInt16(at, v, true)
    return this
  }
  u32(v: number): this {
    const at = this.reserve(4)
    this.view.setUint32(at, v, true)
    return this
  }
  i32(v: number): this {
    const at = this.reserve(4)
    this.view.setInt32(at, v, true)
    return this
  }
  u64(v: number | bigint): this {
    const at = this.reserve(8)
    this.view.setBigUint64(at, BigInt(v), true)
    return this
  }
  i64(v: number | bigint): this {
    const at = this.reserve(8)
    this.view.setBigInt64(at, BigInt(v), true)
    return this
  }
  f32(v: number): this {
    const at = this.reserve(4)
    this.view.setFloat32(at, v, true)
    return this
  }
  f64(v: number): this {
    const at = this.reserve(8)
    this.view.setFloat64(at, v, true)
    return this
  }

  bytes(b: Uint8Array): this {
    const at = this.reserve(b.length) // reserve first: it may replace this.buf
    this.buf.set(b, at)
    return this
  }

  /** UTF-8 text with no length prefix. */
  text(s: string): this {
    return this.bytes(utf8.encode(s))
  }

  /** Zero bytes up to the next multiple of `alignment`. */
  pad(alignment: number, fill = 0): this {
    const n = (alignment - (this.length % alignment)) % alignment
    const at = this.reserve(n)
    this.buf.fill(fill, at, this.length)
    return this
  }

  /** The bytes written so far (a copy). */
  finish(): Uint8Array {
    return this.buf.slice(0, this.length)
  }
}
