// Byte-range reads: exact ranges, the handle cache and its limit, and the typed errors for bad ranges.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { WhittleError } from '../errors'
import { writeFileAtomically } from './atomic-writer'
import { MAX_OPEN_FILES, closeAllFiles, openFileCount, readRange } from './ranged-file'

const dir = mkdtempSync(join(tmpdir(), 'whittle-io-'))
afterAll(() => {
  closeAllFiles()
  rmSync(dir, { recursive: true, force: true })
})

const pattern = (n: number, seed: number): Uint8Array =>
  Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff)

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
    const reads = files.flatMap((p, i) =>
      [0, 64, 128].map(async (at) => {
        expect(await readRange(p, at, 64)).toEqual(pattern(256, i).subarray(at, at + 64))
      }),
    )
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
