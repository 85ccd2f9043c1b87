// Byte-range I/O: positional reads, the handle cache, the buffered cursor and the atomic writer.

import { mkdtempSync, readdirSync, rmSync, writeFileSync, existsSync, readFileSync } from 'node:fs'
import { open } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { WhittleError } from '../errors'
import { FileCursor } from './byte-cursor'
import { ByteBuilder } from './byte-builder'
import { writeFileAtomically } from './atomic-writer'
import { MAX_OPEN_FILES, closeAllFiles, openFileCount, readRange } from './ranged-file'

const dir = mkdtempSync(join(tmpdir(), 'whittle-io-'))
afterAll(() => {
  closeAllFiles()
  rmSync(dir, { recursive: true, force: true })
})

const pattern = (n: number, seed: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff)

async function rejection(run: () => Promise<unknown>): Promise<WhittleError> {
  try {
    await run()
  } catch (e) {
    expect(e).toBeInstanceOf(WhittleError)
    return e as WhittleError
  }
  throw new Error('expected a rejection')
}

describe('readRange', () => {
  const file = join(dir, 'data.bin')
  const bytes = pattern(10_000, 3)
  writeFileSync(file, bytes)

  it('reads exact ranges, into caller buffers too', async () => {
    expect(await readRange(file, 0, 10)).toEqual(bytes.subarray(0, 10))
    expect(await readRange(file, 9_990, 10)).toEqual(bytes.subarray(9_990))
    const into = new Uint8Array(100)
    const got = await readRange(file, 500, 50, into)
    expect(got.buffer).toBe(into.buffer)
    expect(got).toEqual(bytes.subarray(500, 550))
    expect(await readRange(file, 123, 0)).toHaveLength(0)
  })

  it('reports truncation, missing files and bad ranges as WhittleErrors naming the file', async () => {
    const cut = await rejection(() => readRange(file, 9_995, 10))
    expect(cut.code).toBe('truncated')
    expect(cut.message).toContain(file)
    const missing = await rejection(() => readRange(join(dir, 'nope.bin'), 0, 1))
    expect(missing.code).toBe('not-found')
    expect((await rejection(() => readRange(file, -1, 4))).code).toBe('validation')
  })

  it('keeps at most MAX_OPEN_FILES handles while many files are read concurrently', async () => {
    const files = Array.from({ length: MAX_OPEN_FILES * 2 }, (_, i) => {
      const p = join(dir, `many-${i}.bin`)
      writeFileSync(p, pattern(256, i))
      return p
    })
    const reads = files.flatMap((p, i) => [0, 64, 128].map(async (at) => {
      expect(await readRange(p, at, 64)).toEqual(pattern(256, i).subarray(at, at + 64))
    }))
    await Promise.all(reads)
    expect(openFileCount()).toBeLessThanOrEqual(MAX_OPEN_FILES)
    closeAllFiles()
    expect(openFileCount()).toBe(0)
    expect(await readRange(files[0], 0, 4)).toEqual(pattern(256, 0).subarray(0, 4)) // reopens on demand
  })

  it('sees a file replaced by the atomic writer, not the old inode', async () => {
    const p = join(dir, 'replaced.bin')
    await writeFileAtomically(p, async (w) => w.write(Uint8Array.of(1, 2, 3, 4)))
    expect(Array.from(await readRange(p, 0, 4))).toEqual([1, 2, 3, 4])
    await writeFileAtomically(p, async (w) => w.write(Uint8Array.of(9, 8, 7, 6)))
    expect(Array.from(await readRange(p, 0, 4))).toEqual([9, 8, 7, 6])
  })
})

describe('FileCursor', () => {
  const file = join(dir, 'cursor.bin')
  const b = new ByteBuilder()
  for (let i = 0; i < 50; i++) b.u8(i).u16(1000 + i).u32(100_000 + i).u64(2n ** 40n + BigInt(i)).f32(i / 4).f64(-i / 8).i8(-i).i16(-i * 100).i32(-i * 70_000).i64(-(2n ** 50n) - BigInt(i))
  const bytes = b.finish()
  writeFileSync(file, bytes)

  it('reads values across refills of a window smaller than a record', async () => {
    const h = await open(file, 'r')
    try {
      const c = new FileCursor(h, file, bytes.length, 0, 7)
      for (let i = 0; i < 50; i++) {
        await c.ensure(1 + 2 + 4 + 8 + 4 + 8 + 1 + 2 + 4 + 8, 'record')
        expect([c.u8(), c.u16(), c.u32(), c.u64(), c.f32(), c.f64(), c.i8(), c.i16(), c.i32(), c.i64()])
          .toEqual([i, 1000 + i, 100_000 + i, 2n ** 40n + BigInt(i), i / 4, -i / 8, -i | 0, (-i * 100) | 0, (-i * 70_000) | 0, -(2n ** 50n) - BigInt(i)])
      }
      expect(c.remaining()).toBe(0)
      await expect(c.ensure(1, 'past the end')).rejects.toMatchObject({ code: 'truncated' })
    } finally {
      await h.close()
    }
  })

  it('skips within and beyond its buffer, and starts mid-file', async () => {
    const h = await open(file, 'r')
    try {
      const record = 42
      const c = new FileCursor(h, file, bytes.length, record * 3, 16)
      await c.ensure(1, 'u8')
      expect(c.u8()).toBe(3)
      c.skip(record - 1, 'rest') // leaves the buffer
      await c.ensure(3, 'u8+u16')
      expect([c.u8(), c.u16()]).toEqual([4, 1004])
      c.skip(2, 'in buffer')
      expect(c.position).toBe(record * 4 + 5)
      expect(() => c.skip(bytes.length, 'too far')).toThrow(/truncated|ends/)
      await c.ensure(100, 'larger than the window') // grows its buffer rather than failing
      expect(Array.from(c.take(3))).toEqual(Array.from(bytes.subarray(record * 4 + 5, record * 4 + 8)))
    } finally {
      await h.close()
    }
  })
})

describe('writeFileAtomically', () => {
  it('leaves neither the target nor a temp file when the producer fails', async () => {
    const p = join(dir, 'failed.bin')
    await expect(writeFileAtomically(p, async (w) => {
      await w.write(new Uint8Array(10))
      throw new Error('producer broke')
    })).rejects.toThrow('producer broke')
    expect(existsSync(p)).toBe(false)
    expect(readdirSync(dir).filter((n) => n.includes('failed.bin'))).toEqual([])
  })

  it('gathers small chunks and passes large ones straight through', async () => {
    const p = join(dir, 'chunks.bin')
    const parts = [pattern(3, 1), pattern(5 << 20, 2), pattern(1000, 3), new Uint8Array(0), pattern(7, 4)]
    const size = await writeFileAtomically(p, async (w) => {
      for (const part of parts) await w.write(part)
    })
    const all = readFileSync(p)
    expect(size).toBe(all.length)
    let at = 0
    for (const part of parts) {
      expect(all.subarray(at, at + part.length).equals(part)).toBe(true)
      at += part.length
    }
  })
})
