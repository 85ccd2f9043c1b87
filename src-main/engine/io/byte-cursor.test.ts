// The buffered cursor over a file (and the byte builder it is checked with).

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { open } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { FileCursor } from './byte-cursor'
import { ByteBuilder } from './byte-builder'
import { closeAllFiles } from './ranged-file'

const dir = mkdtempSync(join(tmpdir(), 'whittle-io-'))
afterAll(() => {
  closeAllFiles()
  rmSync(dir, { recursive: true, force: true })
})

describe('FileCursor', () => {
  const file = join(dir, 'cursor.bin')
  const b = new ByteBuilder()
  for (let i = 0; i < 50; i++)
    b.u8(i)
      .u16(1000 + i)
      .u32(100_000 + i)
      .u64(2n ** 40n + BigInt(i))
      .f32(i / 4)
      .f64(-i / 8)
      .i8(-i)
      .i16(-i * 100)
      .i32(-i * 70_000)
      .i64(-(2n ** 50n) - BigInt(i))
  const bytes = b.finish()
  writeFileSync(file, bytes)

  it('reads values across refills of a window smaller than a record', async () => {
    const h = await open(file, 'r')
    try {
      const c = new FileCursor(h, file, bytes.length, 0, 7)
      for (let i = 0; i < 50; i++) {
        await c.ensure(1 + 2 + 4 + 8 + 4 + 8 + 1 + 2 + 4 + 8, 'record')
        expect([c.u8(), c.u16(), c.u32(), c.u64(), c.f32(), c.f64(), c.i8(), c.i16(), c.i32(), c.i64()]).toEqual([
          i,
          1000 + i,
          100_000 + i,
          2n ** 40n + BigInt(i),
          i / 4,
          -i / 8,
          -i | 0,
          (-i * 100) | 0,
          (-i * 70_000) | 0,
          -(2n ** 50n) - BigInt(i),
        ])
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
