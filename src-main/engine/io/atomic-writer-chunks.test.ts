// The atomic writer's producer: a failing producer leaves nothing behind; small chunks are gathered
// and large ones passed straight through, in order.

import { mkdtempSync, readdirSync, rmSync, existsSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { writeFileAtomically } from './atomic-writer'
import { closeAllFiles } from './ranged-file'

const dir = mkdtempSync(join(tmpdir(), 'whittle-io-'))
afterAll(() => {
  closeAllFiles()
  rmSync(dir, { recursive: true, force: true })
})

const pattern = (n: number, seed: number): Uint8Array =>
  Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff)

describe('writeFileAtomically', () => {
  it('leaves neither the target nor a temp file when the producer fails', async () => {
    const p = join(dir, 'failed.bin')
    await expect(
      writeFileAtomically(p, async (w) => {
        await w.write(new Uint8Array(10))
        throw new Error('producer broke')
      }),
    ).rejects.toThrow('producer broke')
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
