// The legacy importance-matrix file (.dat), which llama-imatrix writes with --output-format dat and
// llama-quantize still reads. Little-endian, no magic:
//   i32 entries; per entry: i32 name length, the name, i32 ncall, i32 nval, nval f32 values;
//   then (newer files) i32 chunks computed, i32 dataset-name length, the dataset name.
// A value is the per-column mean of x² times ncall (ncall = ceil(tokens / chunk size)); llama-quantize
// divides it by ncall again. Every count and length is checked against the bytes that are left before
// anything is allocated, so a hostile file is refused with a typed error naming it.

import { readFile, stat } from 'node:fs/promises'
import { WhittleError } from '../errors'
import { writeFileAtomically } from '../io/atomic-writer'
import { checkImatrix, sortedEntryNames, type Imatrix, type ImatrixEntry } from './imatrix-data'
import { MAX_TENSORS } from './limits'

/**
 * Largest .dat read: the file is read whole. A dense 405B model's imatrix is ~10 MB; a 671B MoE's, with a
 * row per expert, is ~1.3 GB. 2 GiB stays within one Node buffer.
 */
export const MAX_IMATRIX_DAT_BYTES = 2 ** 31 - 1
/** Entry names are ggml tensor names (at most 63 bytes in ggml); 1 KiB is far above any real one. */
export const MAX_IMATRIX_NAME_BYTES = 1024

class DatCursor {
  private pos = 0
  private readonly view: DataView
  constructor(
    private readonly bytes: Uint8Array,
    private readonly file: string,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  }
  get remaining(): number {
    return this.bytes.length - this.pos
  }
  private need(n: number, what: string): void {
    if (n > this.remaining)
      throw new WhittleError(
        'truncated',
        this.file,
        `ends inside ${what} (needs ${n} bytes at offset ${this.pos}, ${this.remaining} left)`,
      )
  }
  i32(what: string): number {
    this.need(4, what)
    const v = this.view.getInt32(this.pos, true)
    this.pos += 4
    return v
  }
  text(n: number, what: string): string {
    this.need(n, what)
    const s = this.bytes.subarray(this.pos, this.pos + n)
    this.pos += n
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(s)
    } catch {
      throw new WhittleError('format', this.file, `${what} is not valid UTF-8`)
    }
  }
  f32s(n: number, what: string): Float32Array {
    this.need(n * 4, what)
    const out = new Float32Array(n)
    for (let i = 0; i < n; i++) out[i] = this.view.getFloat32(this.pos + 4 * i, true)
    this.pos += n * 4
    return out
  }
}

/** Reads a legacy .dat imatrix (llama-imatrix's or Whittle's). */
export async function readImatrixDat(file: string): Promise<Imatrix> {
  const size = await stat(file).then(
    (s) => (s.isFile() ? s.size : -1),
    () => {
      throw new WhittleError('not-found', file, 'cannot read the importance-matrix file')
    },
  )
  if (size < 0) throw new WhittleError('validation', file, 'is not a file')
  if (size > MAX_IMATRIX_DAT_BYTES)
    throw new WhittleError(
      'format',
      file,
      `is ${size} bytes; a legacy imatrix is read whole and the limit is ${MAX_IMATRIX_DAT_BYTES}`,
    )
  return parseImatrixDat(new Uint8Array(await readFile(file)), file)
}

/** Parses the bytes of a legacy .dat imatrix; `file` names it in errors. */
export function parseImatrixDat(bytes: Uint8Array, file: string): Imatrix {
  const c = new DatCursor(bytes, file)
  const n = c.i32('the entry count')
  // Smallest entry: name length, a 1-byte name, ncall, nval, one value.
  const room = Math.floor(c.remaining / 17)
  if (n < 1) throw new WhittleError('format', file, `declares ${n} entries; an imatrix has at least one`)
  if (n > MAX_TENSORS || n > room)
    throw new WhittleError(
      'format',
      file,
      `declares ${n} entries, but ${n > MAX_TENSORS ? `the limit is ${MAX_TENSORS}` : `the file has room for at most ${room}`}`,
    )
  const entries = new Map<string, ImatrixEntry>()
  for (let i = 0; i < n; i++) {
    const len = c.i32(`entry ${i}'s name length`)
    if (len < 1 || len > MAX_IMATRIX_NAME_BYTES)
      throw new WhittleError(
        'format',
        file,
        `entry ${i}'s name is ${len} bytes (1 to ${MAX_IMATRIX_NAME_BYTES} allowed)`,
      )
    const name = c.text(len, `entry ${i}'s name`)
    if (entries.has(name)) throw new WhittleError('format', file, `entry ${name} appears twice`)
    const ncall = c.i32(`${name}'s call count`)
    if (ncall < 0) throw new WhittleError('format', file, `${name} has a negative call count (${ncall})`)
    const nval = c.i32(`${name}'s value count`)
    if (nval < 1 || nval * 4 > c.remaining) {
      throw new WhittleError(
        nval < 1 ? 'format' : 'truncated',
        file,
        `${name} declares ${nval} values, but ${nval < 1 ? 'an entry has at least one' : `only ${Math.floor(c.remaining / 4)} fit in the file`}`,
      )
    }
    const sums = c.f32s(nval, `${name}'s values`)
    const bad = sums.findIndex((v) => !Number.isFinite(v) || v < 0)
    if (bad >= 0)
      throw new WhittleError('format', file, `${name}[${bad}] is ${sums[bad]}; it must be finite and not negative`)
    // The legacy format has one count per entry and does not say how many experts share the values.
    entries.set(name, { columns: nval, sums, counts: Float64Array.of(ncall) })
  }
  let chunkCount = Math.max(0, ...[...entries.values()].map((e) => e.counts[0]))
  const datasets: string[] = []
  if (c.remaining > 0) {
    chunkCount = c.i32('the chunk count')
    if (chunkCount < 0) throw new WhittleError('format', file, `the chunk count is negative (${chunkCount})`)
    const len = c.i32('the dataset name length')
    if (len < 0 || len > c.remaining)
      throw new WhittleError(
        len < 0 ? 'format' : 'truncated',
        file,
        `the dataset name is ${len} bytes, ${c.remaining} left`,
      )
    datasets.push(c.text(len, 'the dataset name'))
    if (c.remaining > 0)
      throw new WhittleError('format', file, `${c.remaining} unexpected bytes after the dataset name`)
  }
  return { entries, countUnit: 'calls', chunkCount, chunkSize: null, datasets }
}

/**
 * The bytes llama-imatrix --output-format dat writes for `imatrix` (token counts and a chunk size needed):
 * names sorted, per entry ncall = ceil(max count / chunk size) and values (Σx² / count) · ncall in f32;
 * an entry nothing reached is left out, and a matrix with no tokens stores 1 (llama.cpp's rule).
 */
export function encodeImatrixDat(imatrix: Imatrix, file: string): Uint8Array {
  checkImatrix(imatrix, file)
  const chunkSize = imatrix.chunkSize
  if (imatrix.countUnit !== 'tokens' || chunkSize === null || chunkSize < 1) {
    throw new WhittleError(
      'unsupported',
      file,
      'writing a .dat needs token counts and the chunk size they were collected with',
    )
  }
  const names = sortedEntryNames(imatrix).filter((name) => imatrix.entries.get(name)!.counts.some((x) => x > 0))
  const enc = new TextEncoder()
  const dataset = enc.encode(imatrix.datasets.at(-1) ?? '')
  const parts: { name: Uint8Array; ncall: number; values: Float32Array }[] = names.map((name) => {
    const e = imatrix.entries.get(name)!
    const ncall = Math.ceil(Math.max(...e.counts) / chunkSize)
    const values = new Float32Array(e.sums.length)
    for (let m = 0; m < e.counts.length; m++) {
      for (let j = m * e.columns; j < (m + 1) * e.columns; j++) {
        const count = Math.fround(e.counts[m])
        values[j] = count === 0 ? ncall : Math.fround(Math.fround(e.sums[j] / count) * ncall)
      }
    }
    return { name: enc.encode(name), ncall, values }
  })
  const total = 4 + parts.reduce((s, p) => s + 12 + p.name.length + 4 * p.values.length, 0) + 8 + dataset.length
  const out = new Uint8Array(total)
  const v = new DataView(out.buffer)
  let o = 0
  const i32 = (x: number): void => {
    v.setInt32(o, x, true)
    o += 4
  }
  i32(parts.length)
  for (const p of parts) {
    i32(p.name.length)
    out.set(p.name, o)
    o += p.name.length
    i32(p.ncall)
    i32(p.values.length)
    for (const x of p.values) {
      v.setFloat32(o, x, true)
      o += 4
    }
  }
  i32(imatrix.chunkCount)
  i32(dataset.length)
  out.set(dataset, o)
  return out
}

/** Writes `imatrix` as a legacy .dat; the file must not exist. Returns its size. */
export async function writeImatrixDat(file: string, imatrix: Imatrix): Promise<number> {
  const bytes = encodeImatrixDat(imatrix, file)
  return writeFileAtomically(
    file,
    async (w) => {
      await w.write(bytes)
    },
    { exclusive: true },
  )
}
