import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { dequantizeBlocks, isBlockType } from '../../../kernels/reference/ggml-dequant-all'
import { openModelFiles } from '../formats/open'
import { readTensorBytes } from '../formats/read'
import type { TensorEntry } from '../formats/types'
import { ggmlBlockByName } from '../numerics/ggml-blocks'
import { hasShared, shared, SKIP_SHARED } from '../testing/shared-data'
import { blockScaleFields, ggufBlockStorage } from './gguf-block-storage'

const GOLDEN_TYPES = ['Q8_0', 'Q4_0', 'Q4_1', 'Q5_0', 'Q5_1', 'Q2_K', 'Q3_K', 'Q4_K', 'Q5_K', 'Q6_K']
const MORE_TYPES = ['IQ4_NL', 'IQ4_XS', 'TQ1_0', 'TQ2_0']

function golden(type: string): string {
  return shared('reference', 'gguf-golden', `small-llama-${type}.gguf`)
}

/** IEEE binary16 → number, written out here so the test does not share the engine's decoder. */
function half(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1
  const exp = (bits >> 10) & 0x1f
  const frac = bits & 0x3ff
  if (exp === 0) return sign * frac * 2 ** -24
  if (exp === 31) return frac ? NaN : sign * Infinity
  return sign * (1 + frac / 1024) * 2 ** (exp - 15)
}

async function firstQuantized(file: string, type: string): Promise<TensorEntry> {
  const files = await openModelFiles(file)
  const e = files.tensors.find((t) => t.dtype === type && t.shape.length === 2)
  if (!e) throw new Error(`${path.basename(file)} has no 2-D ${type} tensor`)
  return e
}

describe.skipIf(!hasShared)(`GGUF block storage (${hasShared ? 'llama.cpp golden files' : SKIP_SHARED})`, () => {
  it('Q4_K: type, geometry, and d / dmin histograms equal to decoding every block’s two fp16 fields', async () => {
    const e = await firstQuantized(golden('Q4_K'), 'Q4_K')
    const s = (await ggufBlockStorage(e))!
    expect(s.type).toBe('Q4_K')
    expect(s.blockElements).toBe(256)
    expect(s.blockBytes).toBe(144)
    expect(s.blocks).toBe(e.shape[0] * (e.shape[1] / 256))
    expect(s.bitsPerWeight).toBe(4.5)
    expect(s.scales.map((f) => f.field)).toEqual(['d', 'dmin'])

    const raw = await readTensorBytes(e, 0, e.byteLength)
    for (const [k, at] of [0, 2].entries()) {
      const values: number[] = []
      for (let b = 0; b < s.blocks; b++) values.push(half(raw[b * 144 + at] | (raw[b * 144 + at + 1] << 8)))
      const h = s.scales[k].histogram
      expect(h.lo).toBe(Math.min(...values))
      expect(h.hi).toBe(Math.max(...values))
      const want = new Array(h.counts.length).fill(0)
      const width = (h.hi - h.lo) / h.counts.length
      for (const v of values) want[Math.min(h.counts.length - 1, Math.floor((v - h.lo) / width))]++
      expect(h.counts).toEqual(want)
      expect(h.counts.reduce((a, b) => a + b, 0)).toBe(s.blocks)
    }
    expect(s.scales[0].histogram.lo).toBeGreaterThan(0) // llama.cpp's d of real weights is positive
  })

  for (const type of [...GOLDEN_TYPES, ...MORE_TYPES]) {
    it(`${type}: the scale fields are where the dequantizer reads them (zeroing them zeroes the block)`, async () => {
      const info = ggmlBlockByName(type)!
      const fields = blockScaleFields(info)!
      expect(fields.length).toBeGreaterThan(0)
      const e = await firstQuantized(golden(type), type)
      const block = await readTensorBytes(e, 0, info.blockBytes)
      if (!isBlockType(type)) throw new Error(`no reference dequantizer for ${type}`)
      const before = new Float32Array(info.blockElements)
      dequantizeBlocks(type, block, info.blockElements, before)
      expect(before.some((x) => x !== 0)).toBe(true)
      for (const f of fields) block.fill(0, f.at, f.at + (f.encoding === 'f16' ? 2 : 4))
      const after = new Float32Array(info.blockElements)
      dequantizeBlocks(type, block, info.blockElements, after)
      expect(Array.from(after, Math.abs)).toEqual(new Array(info.blockElements).fill(0))
    })
  }
})

describe('GGUF block storage without files', () => {
  it('plain dtypes have none', async () => {
    const e: TensorEntry = { name: 'x', dtype: 'F32', shape: [4], file: '/nowhere', offset: 0, byteLength: 16 }
    expect(await ggufBlockStorage(e)).toBeUndefined()
  })
})
