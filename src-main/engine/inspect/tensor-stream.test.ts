import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { WorkerPool } from '../pool/worker-pool'
import type { DType, TensorEntry } from '../formats/types'
import { decodeToF32 } from '../formats/read'
import {
  MOMENT_ABSMAX,
  MOMENT_COUNT,
  MOMENT_INF,
  MOMENT_M2,
  MOMENT_M3,
  MOMENT_M4,
  MOMENT_MAX,
  MOMENT_MEAN,
  MOMENT_MIN,
  MOMENT_NAN,
  MOMENT_ZERO,
} from '../../../kernels/reference/stats'
import { streamTensor, streamTensors, type StreamResult } from './tensor-stream'

// Tensors written to one file, streamed back through the pool and checked against sums computed here,
// independently, in f64 over the whole tensor (decoded by the TS reference decode).

let pool: WorkerPool
let dir: string
let entries: TensorEntry[]

/** mulberry32, seeded. */
function random(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = Math.imul(a ^ (a >>> 15), a | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** Raw bytes of `n` elements of `dtype`: roughly normal values, a few of them special. */
function tensorBytes(dtype: DType, n: number, seed: number, specials: boolean): Uint8Array {
  const r = random(seed)
  const values = new Float32Array(n)
  for (let i = 0; i < n; i++) values[i] = (r() + r() + r() - 1.5) * (i % 7 === 0 ? 3 : 0.4) + 0.05
  if (specials)
    for (const [i, v] of [
      [3, NaN],
      [10, Infinity],
      [11, -Infinity],
      [12, 0],
      [13, -0],
    ] as const)
      values[i] = v
  switch (dtype) {
    case 'F32':
      return new Uint8Array(values.buffer)
    case 'BF16': {
      const bits = new Uint32Array(values.buffer)
      return new Uint8Array(Uint16Array.from(bits, (b) => b >>> 16).buffer)
    }
    case 'F16': {
      // Random f16 patterns: every exponent, subnormals, Inf and NaN included.
      return new Uint8Array(Uint16Array.from({ length: n }, () => Math.floor(r() * 65536)).buffer)
    }
    case 'I8':
      return Uint8Array.from({ length: n }, () => Math.floor(r() * 256))
    default:
      throw new Error(`no test data for ${dtype}`)
  }
}

const SPECS: { name: string; dtype: DType; shape: number[]; specials: boolean }[] = [
  { name: 'a', dtype: 'BF16', shape: [300, 70], specials: false },
  { name: 'b', dtype: 'F16', shape: [41, 33], specials: false },
  { name: 'empty', dtype: 'F32', shape: [0, 8], specials: false },
  { name: 'c', dtype: 'F32', shape: [17, 29], specials: true },
  { name: 'norm', dtype: 'BF16', shape: [1000], specials: false },
  { name: 'd', dtype: 'I8', shape: [40, 16], specials: false },
  { name: 'e', dtype: 'BF16', shape: [9, 5, 6], specials: true },
]

beforeAll(async () => {
  pool = await WorkerPool.create({ threads: 2 })
  dir = await mkdtemp(path.join(tmpdir(), 'whittle-stream-'))
  const file = path.join(dir, 'tensors.bin')
  const parts: Uint8Array[] = []
  entries = []
  let offset = 3 // unaligned on purpose
  parts.push(new Uint8Array(3))
  for (const [i, s] of SPECS.entries()) {
    const n = s.shape.reduce((a, b) => a * b, 1)
    const bytes = tensorBytes(s.dtype, n, i + 1, s.specials)
    entries.push({ name: s.name, dtype: s.dtype, shape: s.shape, file, offset, byteLength: bytes.length })
    parts.push(bytes)
    offset += bytes.length
  }
  await writeFile(file, Buffer.concat(parts))
})

afterAll(async () => {
  await pool?.close()
  if (dir) await rm(dir, { recursive: true, force: true })
})

async function decoded(entry: TensorEntry): Promise<Float32Array> {
  const { readFile } = await import('node:fs/promises')
  const file = await readFile(entry.file)
  const n = entry.shape.reduce((a, b) => a * b, 1)
  const out = new Float32Array(n)
  decodeToF32(entry.dtype, new Uint8Array(file.buffer, file.byteOffset + entry.offset, entry.byteLength), n, out)
  return out
}

function close(actual: number, expected: number, scale: number): void {
  expect(Math.abs(actual - expected)).toBeLessThanOrEqual(Math.abs(scale) * 1e-10)
}

/** The stream's result against f64 sums over the whole tensor. */
async function expectMatchesNaive(entry: TensorEntry, r: StreamResult): Promise<void> {
  const x = await decoded(entry)
  const finite = Array.from(x).filter((v) => Number.isFinite(v))
  const m = r.moments
  expect(m[MOMENT_COUNT]).toBe(finite.length)
  expect(m[MOMENT_NAN]).toBe(x.filter((v) => Number.isNaN(v)).length)
  expect(m[MOMENT_INF]).toBe(x.filter((v) => Math.abs(v) === Infinity).length)
  expect(m[MOMENT_ZERO]).toBe(finite.filter((v) => v === 0).length)
  if (finite.length === 0) return
  expect(m[MOMENT_MIN]).toBe(Math.min(...finite))
  expect(m[MOMENT_MAX]).toBe(Math.max(...finite))
  expect(m[MOMENT_ABSMAX]).toBe(Math.max(...finite.map(Math.abs)))
  const mean = finite.reduce((a, b) => a + b, 0) / finite.length
  const central = (k: number): number => finite.reduce((a, v) => a + (v - mean) ** k, 0)
  close(m[MOMENT_MEAN], mean, Math.max(1, Math.abs(mean)))
  close(m[MOMENT_M2], central(2), central(2))
  close(m[MOMENT_M3], central(3), central(2) * 10)
  close(m[MOMENT_M4], central(4), central(4))

  const rows = entry.shape.length >= 2 ? entry.shape[0] : 0
  if (rows === 0) return
  const cols = x.length / rows
  for (let i = 0; i < rows; i++) {
    let abs = 0,
      sq = 0
    for (let c = 0; c < cols; c++) {
      const v = x[i * cols + c]
      if (!Number.isFinite(v)) continue
      abs = Math.max(abs, Math.abs(v))
      sq += v * v
    }
    expect(r.rowAbsmax![i]).toBe(abs)
    close(r.rowSumsq![i], sq, sq)
  }
  for (let c = 0; c < cols; c++) {
    let abs = 0,
      sq = 0
    for (let i = 0; i < rows; i++) {
      const v = x[i * cols + c]
      if (!Number.isFinite(v)) continue
      abs = Math.max(abs, Math.abs(v))
      sq += v * v
    }
    expect(r.colAbsmax![c]).toBe(abs)
    close(r.colSumsq![c], sq, sq)
  }
}

async function streamAll(chunkElements?: number, slots?: number): Promise<StreamResult[]> {
  const results: StreamResult[] = []
  const order: number[] = []
  await streamTensors(
    pool,
    entries,
    { moments: true, channels: true },
    (i, r) => {
      order.push(i)
      results[i] = r
    },
    { chunkElements, slots },
  )
  expect(order).toEqual(entries.map((_, i) => i)) // every tensor, in order, once
  return results
}

describe('streamTensors', () => {
  it('moments and channel statistics of every dtype agree with f64 sums over the whole tensor', async () => {
    const results = await streamAll(500) // many chunks of whole rows
    for (const [i, entry] of entries.entries()) await expectMatchesNaive(entry, results[i])
  })

  it('chunk size, slot count and streaming alongside other tensors change no row or column bits', async () => {
    const big = await streamAll()
    const small = await streamAll(64, 1)
    for (const [i, entry] of entries.entries()) {
      const alone = await streamTensor(pool, entry, { moments: true, channels: true }, { slots: 3 })
      for (const r of [small[i], alone]) {
        expect(r.rowAbsmax).toEqual(big[i].rowAbsmax)
        expect(r.rowSumsq).toEqual(big[i].rowSumsq)
        expect(r.colAbsmax).toEqual(big[i].colAbsmax)
      }
      // Streamed alone or with the others, the same chunks give the same bits.
      expect(Array.from(alone.moments)).toEqual(Array.from(big[i].moments))
      expect(alone.colSumsq).toEqual(big[i].colSumsq)
    }
  })

  it('a grid and a histogram come from the decoded values alongside the scan', async () => {
    const entry = entries[0]
    const x = await decoded(entry)
    const r = await streamTensor(pool, entry, {
      channels: true,
      grid: { rows: 3, cols: 2 },
      histogram: { lo: -1, hi: 1, bins: 4 },
    })
    await expectMatchesNaive(entry, r)
    const counts = [0, 0, 0, 0, 0, 0]
    for (const v of x) {
      if (v < -1) counts[4]++
      else if (v > 1) counts[5]++
      else counts[Math.min(3, Math.floor((v + 1) * 2))]++
    }
    expect(Array.from(r.histogram!)).toEqual(counts)
    expect(Math.max(...r.grid!)).toBe(Math.max(...Array.from(x, Math.abs)))
  })
})
