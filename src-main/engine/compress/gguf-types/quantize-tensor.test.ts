// quantizeTensorGguf through a real worker pool against the TS reference quantizers and dequantizers,
// the fallback chain for rows that are not a whole number of blocks, and stories260K (whose 172-column
// ffn_down llama.cpp refuses to quantize to any block type).

import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { dequantizeBlocks, type BlockType } from '../../../../kernels/reference/ggml-dequant-all'
import { quantizeBlocks } from '../../../../kernels/reference/ggml-quantize-all'
import { quantizeRowsWeighted } from '../../../../kernels/reference/ggml-quantize-imatrix'
import { f16ToF32 } from '../../../../kernels/reference/convert'
import { f32ToF16Bits } from '../../../../kernels/reference/ggml-quantize'
import { rng, normalish } from '../../../../kernels/testing/kernel-harness'
import { WhittleError } from '../../errors'
import { openModelFiles } from '../../formats/open'
import { readTensorF32 } from '../../formats/read'
import { WorkerPool } from '../../pool/worker-pool'
import { hasShared, shared, SKIP_SHARED } from '../../testing/shared-data'
import { compatibleGgufType, ggufRowBytes, quantizeTensorGguf, type GgufStorageType } from './quantize-tensor'

let pool: WorkerPool
beforeAll(async () => {
  pool = await WorkerPool.create({ threads: 0 })
})
afterAll(async () => {
  await pool.close()
})

/** What the reference twins give for W quantized as `type` row by row, and decoded back. */
function expected(
  type: GgufStorageType,
  w: Float32Array,
  rows: number,
  cols: number,
): { bytes: Uint8Array; values: Float32Array } {
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
      quantizeBlocks(type as BlockType, row, cols, out)
      dequantizeBlocks(type as BlockType, out, cols, values.subarray(r * cols, (r + 1) * cols))
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

  it('falls back K-quants as llama.cpp does on 32-multiples, and everything else to F16, with a reason', () => {
    const k = compatibleGgufType('Q6_K', 64)
    expect(k.type).toBe('Q8_0')
    expect(k.fallback).toMatch(/64 elements.*Q6_K's 256-element blocks.*Q8_0/)
    expect(compatibleGgufType('Q4_K', 64)).toMatchObject({
      type: 'Q5_0',
      fallback: expect.stringMatching(/Q4_K.*Q5_0/),
    })
    expect(compatibleGgufType('Q5_K', 96)).toMatchObject({
      type: 'Q5_1',
      fallback: expect.stringMatching(/Q5_K.*Q5_1/),
    })
    expect(compatibleGgufType('Q4_K', 172).type).toBe('F16')
    const q = compatibleGgufType('Q4_0', 172)
    expect(q.type).toBe('F16')
    expect(q.fallback).toMatch(/172 elements.*Q4_0's 32-element blocks.*F16/)
    expect(compatibleGgufType('Q8_0', 1)).toMatchObject({ type: 'F16' })
  })

  it("follows llama.cpp's fallbacks for the low-bit 256-element types, then F16", () => {
    const nl = compatibleGgufType('IQ4_XS', 96)
    expect(nl.type).toBe('IQ4_NL')
    expect(nl.fallback).toMatch(/96 elements.*IQ4_XS's 256-element blocks.*IQ4_NL/)
    for (const t of ['Q2_K', 'Q3_K', 'TQ1_0', 'TQ2_0'] as const) {
      const c = compatibleGgufType(t, 64)
      expect(c.type).toBe('Q4_0')
      expect(c.fallback).toMatch(new RegExp(`64 elements.*${t}'s 256-element blocks.*Q4_0`))
    }
    for (const t of ['Q2_K', 'Q3_K', 'IQ4_XS', 'TQ1_0', 'TQ2_0'] as const)
      expect(compatibleGgufType(t, 172).type).toBe('F16')
    for (const t of ['Q4_1', 'Q5_0', 'Q5_1', 'IQ4_NL'] as const) {
      expect(compatibleGgufType(t, 64)).toEqual({ type: t })
      expect(compatibleGgufType(t, 48).type).toBe('F16')
    }
  })

  it('refuses unknown types and impossible row lengths with a WhittleError', () => {
    expect(() => compatibleGgufType('IQ2_XXS' as GgufStorageType, 256)).toThrow(WhittleError)
    expect(() => compatibleGgufType('toString' as GgufStorageType, 256)).toThrow(/cannot be written/)
    expect(() => compatibleGgufType('Q8_0', 0)).toThrow(WhittleError)
    expect(() => compatibleGgufType('Q8_0', 2.5)).toThrow(WhittleError)
  })
})

describe('quantizeTensorGguf', () => {
  const cases: Array<[GgufStorageType, number, number]> = [
    ['Q8_0', 9, 64],
    ['Q4_0', 5, 96],
    ['Q4_K', 7, 512],
    ['Q6_K', 3, 256],
    ['F16', 4, 33],
    ['F32', 2, 5],
    ['Q4_1', 3, 96],
    ['Q5_0', 4, 64],
    ['Q5_1', 2, 160],
    ['Q2_K', 5, 512],
    ['Q3_K', 3, 256],
    ['IQ4_NL', 6, 32],
    ['IQ4_XS', 2, 768],
    ['TQ1_0', 3, 256],
    ['TQ2_0', 4, 512],
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

  it("applies llama.cpp's fallback: Q4_K on 96 columns is Q5_0, Q5_K is Q5_1, Q4_0 on 172 columns is F16", () => {
    const w = normalish(rng(5), 3 * 172, 0.1)
    const f16 = quantizeTensorGguf(pool, w, 3, 172, 'Q4_0')
    expect(f16.type).toBe('F16')
    expect(f16.fallback).toMatch(/172/)
    expect(f16.bytes).toEqual(expected('F16', w, 3, 172).bytes)
    const q50 = quantizeTensorGguf(pool, w.subarray(0, 4 * 96), 4, 96, 'Q4_K')
    expect(q50.type).toBe('Q5_0')
    expect(q50.bytes).toEqual(expected('Q5_0', w.subarray(0, 4 * 96), 4, 96).bytes)
    const q51 = quantizeTensorGguf(pool, w.subarray(0, 4 * 96), 4, 96, 'Q5_K')
    expect(q51.type).toBe('Q5_1')
    expect(q51.dequantized).toEqual(expected('Q5_1', w.subarray(0, 4 * 96), 4, 96).values)
    const nl = quantizeTensorGguf(pool, w.subarray(0, 4 * 96), 4, 96, 'IQ4_XS')
    expect(nl.type).toBe('IQ4_NL')
    expect(nl.bytes).toEqual(expected('IQ4_NL', w.subarray(0, 4 * 96), 4, 96).bytes)
    expect(nl.dequantized).toEqual(expected('IQ4_NL', w.subarray(0, 4 * 96), 4, 96).values)
  })

  it('with an importance row: the bytes of the weighted reference quantizers, decoded alike, in any chunking', () => {
    const rows = 5,
      cols = 512
    const w = normalish(rng(21), rows * cols, 0.03)
    const importance = Float32Array.from({ length: cols }, (_, c) => 0.1 + (c % 9) * (c % 4))
    for (const type of ['Q4_0', 'Q5_1', 'Q2_K', 'Q3_K', 'Q4_K', 'Q6_K', 'IQ4_XS', 'IQ4_NL'] as const) {
      const want = new Uint8Array(rows * ggufRowBytes(type, cols))
      quantizeRowsWeighted(type, w, rows, cols, importance, want)
      const values = new Float32Array(rows * cols)
      dequantizeBlocks(type, want, rows * cols, values)
      for (const chunkElements of [undefined, 2 * cols]) {
        const got = quantizeTensorGguf(pool, w, rows, cols, type, { importance, chunkElements })
        expect(got.bytes, type).toEqual(want)
        expect(got.dequantized, type).toEqual(values)
      }
      expect(quantizeTensorGguf(pool, w, rows, cols, type).bytes).not.toEqual(want) // the importances matter
    }
    // Types without importance-weighted quantization ignore it.
    expect(quantizeTensorGguf(pool, w, rows, cols, 'Q8_0', { importance }).bytes).toEqual(
      expected('Q8_0', w, rows, cols).bytes,
    )
    expect(quantizeTensorGguf(pool, w, rows, cols, 'TQ2_0', { importance }).bytes).toEqual(
      expected('TQ2_0', w, rows, cols).bytes,
    )
  })

  it('refuses an importance row of the wrong length or with negative or non-finite values', () => {
    const w = new Float32Array(2 * 64)
    expect(() => quantizeTensorGguf(pool, w, 2, 64, 'Q4_0', { importance: new Float32Array(63) })).toThrow(WhittleError)
    expect(() => quantizeTensorGguf(pool, w, 2, 64, 'Q4_0', { importance: new Float32Array(64).fill(-1) })).toThrow(
      /importance/,
    )
    expect(() => quantizeTensorGguf(pool, w, 2, 64, 'Q4_0', { importance: new Float32Array(64).fill(NaN) })).toThrow(
      /importance/,
    )
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
          expect(got.type, t.name).toBe(type === 'Q4_K' && cols % 256 !== 0 ? 'Q5_0' : type)
        }
        expect(got.fallback === undefined, t.name).toBe(got.type === type)
        expect(got.bytes).toEqual(expected(got.type, w, rows, cols).bytes)
      }
    }
  })
})
