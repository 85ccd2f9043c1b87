// The export's streamed paths against independent expectations: quantizing a tensor in blocks of rows on
// 2 workers gives exactly the single-threaded quantizer's bytes (quantizeTensorGguf, the TS-level whole-
// tensor path) and the same exactness; moving F16 bytes in blocks, q/k rows permuted, gives exactly the
// whole-tensor permutation (permuteRowBytes over rowSources); every block's CRC-32, hashed on the CRC
// threads in slices and joined, is the CRC-32 of its bytes (a bitwise one, from the definition).

import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { TensorEntry } from '../../formats/types'
import { WorkerPool } from '../../pool/worker-pool'
import { quantizeTensorGguf } from '../../compress/gguf-types/quantize-tensor'
import { hfToGgufRows } from '../../arch/rope-permute'
import { decodeToF32 } from '../../formats/read'
import { encodeF16Array } from '../../numerics/float-encodings'
import { permuteRowBytes, rowSources } from './names'
import { copyJobs, quantizeJobs } from './tensor-blocks'
import type { BlockJob } from './block-pipeline'
import { CrcThreads } from './crc-threads'
import { crc32Bitwise } from '../../testing/crc32-bitwise'

let pool: WorkerPool
let crc: CrcThreads
beforeAll(async () => {
  pool = await WorkerPool.create({ threads: 2 })
  crc = new CrcThreads(pool)
})
afterAll(async () => {
  await crc?.close()
  await pool?.close()
})

/** A [rows, cols] F16 tensor held in memory, deterministic pseudo-random values. */
function f16Entry(rows: number, cols: number, seed: number): TensorEntry {
  let s = seed
  const values = Float32Array.from({ length: rows * cols }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    return (s / 2 ** 32 - 0.5) * 0.2
  })
  const data = new Uint8Array(encodeF16Array(values).buffer)
  return {
    name: 'w',
    dtype: 'F16',
    shape: [rows, cols],
    file: '/held.safetensors',
    offset: 0,
    byteLength: data.length,
    data,
  }
}

/**
 * Runs the jobs one after another, concatenating their output and releasing each block; each block's
 * CRC-32 (joined from the threads' slices) must be the bitwise CRC-32 of its bytes.
 */
async function runAll(jobs: BlockJob[]): Promise<Uint8Array> {
  const out = new Uint8Array(jobs.reduce((n, j) => n + j.bytes, 0))
  let at = 0
  for (const job of jobs) {
    const block = await job.run()
    expect(block.crc).toBe(crc32Bitwise(block.bytes))
    out.set(block.bytes, at)
    at += block.bytes.length
    block.release?.()
  }
  // Every block gave its kernel memory back.
  expect(pool.arena.liveBytes).toBe(0)
  return out
}

describe('quantizeJobs', () => {
  const rows = 37
  const cols = 512
  const entry = f16Entry(rows, cols, 5)
  const weights = new Float32Array(rows * cols)
  decodeToF32('F16', entry.data!, rows * cols, weights)

  for (const type of ['Q8_0', 'Q4_0', 'Q4_K', 'Q6_K'] as const) {
    it(`${type} in blocks of rows on 2 workers is byte-identical to the whole-tensor quantizer`, async () => {
      const want = quantizeTensorGguf(pool, weights, rows, cols, type)
      // 5 rows a block: 8 blocks, the last a partial one, each split over both workers.
      const exactness = { exact: true }
      const got = await runAll(quantizeJobs(pool, crc, entry, type, null, exactness, 5 * cols))
      expect(Buffer.from(got).equals(Buffer.from(want.bytes))).toBe(true)
      expect(exactness.exact).toBe(false)
    })
  }

  it('with importances, as the whole-tensor quantizer with the same importances', async () => {
    const importance = Float32Array.from({ length: cols }, (_, i) => 0.5 + ((i * 37) % 11))
    const want = quantizeTensorGguf(pool, weights, rows, cols, 'Q4_K', { importance })
    const got = await runAll(quantizeJobs(pool, crc, entry, 'Q4_K', importance, { exact: true }, 7 * cols))
    expect(Buffer.from(got).equals(Buffer.from(want.bytes))).toBe(true)
  })

  it('q/k rows permuted block by block (whole heads) as the whole tensor permuted, then quantized', async () => {
    const heads = 4
    const qRows = 64
    const q = f16Entry(qRows, cols, 11)
    const w = new Float32Array(qRows * cols)
    decodeToF32('F16', q.data!, qRows * cols, w)
    const want = quantizeTensorGguf(pool, hfToGgufRows(w, qRows, cols, heads), qRows, cols, 'Q8_0')
    const permutation = { sources: rowSources(qRows, heads, hfToGgufRows), heads }
    const jobs = quantizeJobs(pool, crc, q, 'Q8_0', null, { exact: true }, 20 * cols, permutation)
    // 20 rows asked for: whole heads of 16 rows.
    expect(jobs.length).toBe(4)
    expect(Buffer.from(await runAll(jobs)).equals(Buffer.from(want.bytes))).toBe(true)
  })

  it('reports exact values when the weights already are what the type stores (F16 -> F16 via f32)', async () => {
    const exactness = { exact: true }
    const got = await runAll(quantizeJobs(pool, crc, entry, 'F16', null, exactness, 3 * cols))
    expect(Buffer.from(got).equals(Buffer.from(entry.data!))).toBe(true)
    expect(exactness.exact).toBe(true)
  })

  it('is not exact when one value of a later row of a block is not what the type stores', async () => {
    // F32 weights that F16 holds exactly, but for one value: in a block's first row (the cheap check)
    // or in a later row (the whole-block check after it), and the bytes are the quantizer's either way.
    for (const row of [0, 7]) {
      const values = weights.slice()
      values[row * cols + 3] *= 1 + 2 ** -20
      const f32: TensorEntry = {
        ...entry,
        dtype: 'F32',
        byteLength: values.byteLength,
        data: new Uint8Array(values.buffer),
      }
      const exactness = { exact: true }
      const got = await runAll(quantizeJobs(pool, crc, f32, 'F16', null, exactness, 5 * cols))
      const want = quantizeTensorGguf(pool, values, rows, cols, 'F16')
      expect(Buffer.from(got).equals(Buffer.from(want.bytes))).toBe(true)
      expect(exactness.exact).toBe(false)
    }
  })
})

describe('copyJobs', () => {
  it('moves F16 rows in blocks of whole heads, q/k rows permuted as the whole-tensor permutation', async () => {
    const heads = 4
    const rows = 64
    const cols = 48
    const entry = f16Entry(rows, cols, 9)
    const sources = rowSources(rows, heads, hfToGgufRows)
    const want = permuteRowBytes(entry.data!, sources)
    // 20 rows asked for: rounded down to whole heads of 16 rows, 4 blocks.
    const jobs = copyJobs(pool, crc, entry, rows, sources, heads, 20 * cols)
    expect(jobs.map((j) => j.bytes)).toEqual([1, 2, 3, 4].map(() => 16 * cols * 2))
    expect(Buffer.from(await runAll(jobs)).equals(Buffer.from(want))).toBe(true)
    const plain = await runAll(copyJobs(pool, crc, entry, rows, null, 0, 20 * cols))
    expect(Buffer.from(plain).equals(Buffer.from(entry.data!))).toBe(true)
  })

  it('hashes a block large enough to be split across the threads to the CRC-32 of its bytes', async () => {
    // 1 MiB blocks: hashed in two slices on the two threads, joined (runAll checks each block's CRC).
    const entry = f16Entry(1024, 1024, 13)
    const jobs = copyJobs(pool, crc, entry, 1024, null, 0, 512 * 1024)
    expect(jobs.map((j) => j.bytes)).toEqual([1 << 20, 1 << 20])
    expect(Buffer.from(await runAll(jobs)).equals(Buffer.from(entry.data!))).toBe(true)
  })
})
