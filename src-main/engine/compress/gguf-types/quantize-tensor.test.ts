// quantizeTensorGguf through a real worker pool against the TS reference quantizers and dequantizers,
// the fallback chain for rows that are not a whole number of blocks, and stories260K (whose 172-column
// ffn_down llama.cpp refuses to quantize to any block type).

import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { dequantizeRow } from '../../../../kernels/reference/ggml-dequant'
import { f16ToF32 } from '../../../../kernels/reference/convert'
import { f32ToF16Bits, quantizeRow, type QuantType } from '../../../../kernels/reference/ggml-quantize'
import { rng, normalish } from '../../../../kernels/test/support'
import { WhittleError } from '../../errors'
import { openModelFiles } from '../../formats/open'
import { readTensorF32 } from '../../formats/read'
import { WorkerPool } from '../../pool/worker-pool'
import { hasShared, shared, SKIP_SHARED } from '../../testing/shared-data'
import { compatibleGgufType, ggufRowBytes, quantizeTensorGguf, type GgufStorageType } from './quantize-tensor'

let pool: WorkerPool
beforeAll(async () => { pool = await WorkerPool.create({ threads: 0 }) })
afterAll(async () => { await pool.close() })

/** What the reference twins give for W quantized as `type` row by row, and decoded back. */
function expected(type: GgufStorageType, w: Float32Array, rows: number, cols: number): { bytes: Uint8Array; values: Float32Array } {
  const rowBytes = ggufRowBytes(type, cols)
  const bytes = new Uint8Array(rows * rowBytes)
  const values = new Float32Array(rows * cols)
  for (let r = 0; r < rows; r++) {
    const row = w.subarray(r * cols, (r + 1) * cols)
    const out = bytes.subarray(r * rowBytes, (r + 1) * rowBytes)
    if (type === 'F16') {
      for (let c = 0; c < cols; c++) {
        const h = f32ToF16Bits(row[c])
        out[2 * c] = h & 0xff
        out[2 * c + 1] = h >> 8
        values[r * cols + c] = f16ToF32(h)
      }
    } else if (type === 'F32') {
      out.set(new Uint8Array(row.slice().buffer))
      values.set(row, r * cols)
    } else {
      quantizeRow(type as QuantType, row, cols, out)
      dequantizeRow(type as QuantType, out, cols, values.subarray(r * cols, (r + 1) * cols))
    }
  }
  return { bytes, values }
}

describe('compatibleGgufType', () => {
  it('keeps a type whose blocks divide the row', () => {
    expect(compatibleGgufType('Q4_K', 512)).toEqual({ type: 'Q4_K' })
    expect(compatibleGgufType('Q8_0', 96)).toEqual({ type: 'Q8_0' })
    expect(compatibleGgufType('F16', 7)).toEqual({ type: 'F16' })
  })

  it('falls back K-quants to Q8_0 on 32-multiples, and everything else to F16, with a reason', () => {
    const k = compatibleGgufType('Q6_K', 64)
    expect(k.type).toBe('Q8_0')
    expect(k.fallback).toMatch(/64 elements.*Q6_K's 256-element blocks.*Q8_0/)
    expect(compatibleGgufType('Q4_K', 172).type).toBe('F16')
    const q = compatibleGgufType('Q4_0', 172)
    expect(q.type).toBe('F16')
    expect(q.fallback).toMatch(/172 elements.*Q4_0's 32-element blocks.*F16/)
    expect(compatibleGgufType('Q8_0', 1)).toMatchObject({ type: 'F16' })
  })

  it('refuses unknown types and impossible row lengths with a WhittleError', () => {
    expect(() => compatibleGgufType('Q3_K' as GgufStorageType, 256)).toThrow(WhittleError)
    expect(() => compatibleGgufType('toString' as GgufStorageType, 256)).toThrow(/cannot be written/)
    expect(() => compatibleGgufType('Q8_0', 0)).toThrow(WhittleError)
    expect(() => compatibleGgufType('Q8_0', 2.5)).toThrow(WhittleError)
  })
})

describe('quantizeTensorGguf', () => {
  const cases: Array<[GgufStorageType, number, number]> = [
    ['Q8_0', 9, 64], ['Q4_0', 5, 96], ['Q4_K', 7, 512], ['Q6_K', 3, 256], ['F16', 4, 33], ['F32', 2, 5],
  ]
  for (const [type, rows, cols] of cases) {
    it(`${type} [${rows}, ${cols}]: bytes and dequantized values equal the reference twins, in one or many chunks`, () => {
      const w = normalish(rng(rows * cols), rows * cols, 0.05)
      const want = expected(type, w, rows, cols)
      for (const chunkElements of [undefined, cols, 2 * cols + 1]) {
        const live = pool.arena.liveBytes
        const got = quantizeTensorGguf(pool, w, rows, cols, type, { chunkElements })
        expect(got.type).toBe(type)
        expect(got.fallback).toBeUndefined()
        expect(got.bytes).toEqual(want.bytes)
        expect(got.dequantized).toEqual(want.values)
        expect(pool.arena.liveBytes).toBe(live) // every region given back
      }
    })
  }

  it('applies the fallback: Q4_K on 96 columns is Q8_0, Q4_0 on 172 columns is F16', () => {
    const w = normalish(rng(5), 3 * 172, 0.1)
    const f16 = quantizeTensorGguf(pool, w, 3, 172, 'Q4_0')
    expect(f16.type).toBe('F16')
    expect(f16.fallback).toMatch(/172/)
    expect(f16.bytes).toEqual(expected('F16', w, 3, 172).bytes)
    const q8 = quantizeTensorGguf(pool, w.subarray(0, 4 * 96), 4, 96, 'Q4_K')
    expect(q8.type).toBe('Q8_0')
    expect(q8.bytes).toEqual(expected('Q8_0', w.subarray(0, 4 * 96), 4, 96).bytes)
  })

  it('handles zero rows, and refuses mismatched sizes with a WhittleError', () => {
    const empty = quantizeTensorGguf(pool, new Float32Array(0), 0, 256, 'Q4_K')
    expect(empty.bytes.length).toBe(0)
    expect(empty.dequantized.length).toBe(0)
    expect(() => quantizeTensorGguf(pool, new Float32Array(100), 2, 64, 'Q8_0')).toThrow(/needs 128 weights/)
    expect(() => quantizeTensorGguf(pool, new Float32Array(0), -1, 64, 'Q8_0')).toThrow(WhittleError)
  })
})

if (!hasShared) console.log(`[compress/gguf-types/quantize-tensor.test] stories260K: ${SKIP_SHARED}`)

describe.skipIf(!hasShared)('stories260K, which llama.cpp refuses to quantize to Q8_0 or Q4_0', () => {
  it('every 2-D weight gets a type that fits its rows, with a reason wherever it is not the one asked', async () => {
    const model = await openModelFiles(shared('models', 'stories260K-gguf', 'stories260K.gguf'))
    const weights = model.tensors.filter((t) => t.shape.length === 2)
    const down = weights.filter((t) => t.name.endsWith('ffn_down.weight'))
    expect(down.length).toBe(5)
    for (const t of weights) {
      const [rows, cols] = t.shape
      const w = await readTensorF32(t)
      for (const type of ['Q4_0', 'Q4_K'] as const) {
        const got = quantizeTensorGguf(pool, w, rows, cols, type)
        if (cols === 172) {
          expect(got.type, t.name).toBe('F16') // 172 = 4 * 43: no block type fits
        } else {
          expect(cols % 32, t.name).toBe(0) // hidden 64 and vocab 512 rows are whole 32-blocks
          expect(got.type, t.name).toBe(type === 'Q4_K' && cols % 256 !== 0 ? 'Q8_0' : type)
        }
        expect(got.fallback === undefined, t.name).toBe(got.type === type)
        expect(got.bytes).toEqual(expected(got.type, w, rows, cols).bytes)
      }
    }
  })
})
