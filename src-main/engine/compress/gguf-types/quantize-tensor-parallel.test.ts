// quantizeTensorGgufParallel on a real pool of 3 workers against the TS reference twins: the same bytes
// wherever the rows are cut (several chunks, a last chunk with fewer rows than workers), with and
// without importances, and `exact` only when the stored values are the weights.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { closeFile } from '../../io/ranged-file'
import { dequantizeBlocks, type BlockType } from '../../../../kernels/reference/ggml-dequant-all'
import { quantizeBlocks } from '../../../../kernels/reference/ggml-quantize-all'
import { quantizeRowsWeighted } from '../../../../kernels/reference/ggml-quantize-imatrix'
import { f32ToF16Bits } from '../../../../kernels/reference/ggml-quantize'
import { f16ToF32 } from '../../../../kernels/reference/convert'
import { rng, normalish } from '../../../../kernels/testing/kernel-harness'
import { WorkerPool } from '../../pool/worker-pool'
import { ggufRowBytes } from './quantize-tensor'
import { quantizeEntryGgufParallel, quantizeTensorGgufParallel } from './quantize-tensor-parallel'

let pool: WorkerPool
beforeAll(async () => {
  pool = await WorkerPool.create({ threads: 3 })
})
afterAll(async () => {
  await pool.close()
})

function referenceBytes(type: BlockType, w: Float32Array, rows: number, cols: number): Uint8Array {
  const rowBytes = ggufRowBytes(type, cols)
  const out = new Uint8Array(rows * rowBytes)
  for (let r = 0; r < rows; r++)
    quantizeBlocks(type, w.subarray(r * cols, (r + 1) * cols), cols, out.subarray(r * rowBytes, (r + 1) * rowBytes))
  return out
}

describe('quantizeTensorGgufParallel', () => {
  // 8193 rows of 256: more than one pass of 3 slices of 8192 rows, and a last pass of a single row.
  const cases: [BlockType, number, number][] = [
    ['Q8_0', 8193, 256],
    ['Q4_0', 7, 64],
    ['Q4_K', 2, 512],
    ['Q6_K', 11, 256],
    ['Q2_K', 5, 256],
  ]
  for (const [type, rows, cols] of cases) {
    it(`writes ${type} [${rows}, ${cols}] as the reference does`, async () => {
      const w = normalish(rng(rows + cols), rows * cols, 0.05)
      const got = await quantizeTensorGgufParallel(pool, w, rows, cols, type)
      expect(got.type).toBe(type)
      expect(Buffer.from(got.bytes).equals(Buffer.from(referenceBytes(type, w, rows, cols)))).toBe(true)
      expect(got.exact).toBe(false)
    })
  }

  it('weighs by importances as the reference does', async () => {
    const rows = 9
    const cols = 512
    const w = normalish(rng(21), rows * cols, 0.03)
    const importance = Float32Array.from({ length: cols }, (_, c) => 1 + ((c * 37) % 11))
    for (const type of ['Q4_K', 'Q4_0', 'IQ4_XS'] as const) {
      const want = new Uint8Array(rows * ggufRowBytes(type, cols))
      quantizeRowsWeighted(type, w, rows, cols, importance, want)
      const got = await quantizeTensorGgufParallel(pool, w, rows, cols, type, { importance })
      expect(Buffer.from(got.bytes).equals(Buffer.from(want)), type).toBe(true)
    }
  })

  it('reports exact when the weights are already on the grid', async () => {
    const rows = 4
    const cols = 64
    const w = normalish(rng(3), rows * cols, 0.05)
    const bytes = referenceBytes('Q4_0', w, rows, cols)
    const onGrid = new Float32Array(rows * cols)
    dequantizeBlocks('Q4_0', bytes, rows * cols, onGrid)
    const got = await quantizeTensorGgufParallel(pool, onGrid, rows, cols, 'Q4_0')
    expect(got.exact).toBe(true)
  })

  it('falls back like the single-threaded quantizer and encodes F16 halves', async () => {
    const rows = 3
    const cols = 172
    const w = normalish(rng(5), rows * cols, 0.1)
    const got = await quantizeTensorGgufParallel(pool, w, rows, cols, 'Q4_K')
    expect(got.type).toBe('F16')
    expect(got.fallback).toBeDefined()
    const halves = new Uint16Array(got.bytes.buffer, got.bytes.byteOffset, rows * cols)
    expect(Array.from(halves)).toEqual(Array.from(w, (x) => f32ToF16Bits(x)))
  })
})

describe('quantizeEntryGgufParallel', () => {
  it('streams an F16 matrix from its file in blocks of rows to the same bytes as the reference', async () => {
    const rows = 37
    const cols = 256
    const halves = Uint16Array.from(normalish(rng(9), rows * cols, 0.05), (x) => f32ToF16Bits(x))
    const dir = mkdtempSync(path.join(os.tmpdir(), 'whittle-stream-'))
    const file = path.join(dir, 'w.bin')
    // 13 bytes before the tensor: its offset is not aligned, as in a safetensors file.
    const header = new Uint8Array(13).fill(0xee)
    writeFileSync(file, Buffer.concat([header, new Uint8Array(halves.buffer)]))
    const entry = {
      name: 'w',
      dtype: 'F16' as const,
      shape: [rows, cols],
      file,
      offset: 13,
      byteLength: rows * cols * 2,
    }
    try {
      const w = Float32Array.from(halves, (h) => f16ToF32(h))
      // 10 rows per block: four blocks, the last of 7 rows.
      const got = await quantizeEntryGgufParallel(pool, entry, 'Q4_K', { streamElements: 10 * cols })
      expect(Buffer.from(got.bytes).equals(Buffer.from(referenceBytes('Q4_K', w, rows, cols)))).toBe(true)
      const f16 = await quantizeEntryGgufParallel(pool, entry, 'F16', { streamElements: 10 * cols })
      expect(Buffer.from(f16.bytes).equals(Buffer.from(halves.buffer))).toBe(true)
      expect(f16.exact).toBe(true)
    } finally {
      closeFile(file)
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
