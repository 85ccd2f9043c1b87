// readThenRun: the worker's read of a tensor range lands where the calls expect it, on workers and inline
// (threads = 0), from a file or from bytes held in memory; a tensor whose file is cut short fails with
// a 'truncated' error that names the file, and the pool goes on.

import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { WorkerPool } from './worker-pool'
import { readThenRun } from './read-then-run'
import { WhittleError } from '../errors'
import type { TensorEntry } from '../formats/types'
import { convertBF16 } from '../../../kernels/reference/convert'
import { firstBitDifference } from '../../../kernels/testing/kernel-harness'

const HEADER = 24
const N = 50_000
let dir: string
let file: string
const bits = Uint16Array.from({ length: N }, (_, i) => (i * 2654435761) >>> 16)

function entry(byteLength: number, data?: Uint8Array): TensorEntry {
  return { name: 'w', dtype: 'BF16', shape: [N], file, offset: HEADER, byteLength, ...(data ? { data } : {}) }
}

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'whittle-read-then-run-'))
  file = path.join(dir, 'model.bin')
  const bytes = new Uint8Array(HEADER + N * 2)
  bytes.set(new Uint8Array(bits.buffer), HEADER)
  writeFileSync(file, bytes)
})

afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe.each([1, 0])('readThenRun, %i worker threads', (threads) => {
  let pool: WorkerPool
  beforeAll(async () => {
    pool = await WorkerPool.create({ threads })
  })
  afterAll(() => pool.close())

  it.each(['file', 'held bytes'])('decodes a range read from %s', async (source) => {
    const first = 1234
    const count = 30_000
    const held = source === 'held bytes' ? new Uint8Array(bits.buffer.slice(0)) : undefined
    const raw = pool.arena.alloc(count * 2)
    const out = pool.arena.alloc(count * 4)
    try {
      await readThenRun(pool, entry(N * 2, held), first * 2, count * 2, raw.ptr, [
        ['convert_bf16', raw.ptr, out.ptr, count],
      ])
      const expected = new Float32Array(count)
      convertBF16(bits.subarray(first, first + count), expected)
      expect(firstBitDifference(pool.arena.f32(out, 0, count), expected)).toBe(-1)
    } finally {
      pool.arena.release(raw)
      pool.arena.release(out)
    }
  })

  it('fails a range past the end of a cut file as truncated, naming the file; the pool goes on', async () => {
    const raw = pool.arena.alloc(4096)
    try {
      const longer = entry(N * 2 + 4096)
      const error = await readThenRun(pool, longer, N * 2 - 100, 400, raw.ptr, []).catch((e: unknown) => e)
      expect(error).toBeInstanceOf(WhittleError)
      expect((error as WhittleError).code).toBe('truncated')
      expect((error as WhittleError).file).toBe(file)
      await readThenRun(pool, entry(N * 2), 0, 64, raw.ptr, [])
      expect(Array.from(pool.arena.u8(raw, 0, 4))).toEqual(Array.from(new Uint8Array(bits.buffer, 0, 4)))
    } finally {
      pool.arena.release(raw)
    }
  })

  it('refuses a range outside the tensor before reading', async () => {
    const error = await readThenRun(pool, entry(N * 2), N * 2 - 2, 4, 0, []).catch((e: unknown) => e)
    expect((error as WhittleError).code).toBe('validation')
  })
})
