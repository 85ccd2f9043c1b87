// A quantization record checked and laid out as GPTQ tensors, decoded back through numerics/gptq-pack.

import { describe, expect, it } from 'vitest'
import type { UniformQuantRecord } from '../compress/quant/record'
import { roundToF16 } from '../numerics/float-encodings'
import { dequantizeGptq } from '../numerics/gptq-pack'
import { packGptqLinear, validateRecord } from './gptq-record'

describe('records', () => {
  const record = (over: Partial<UniformQuantRecord> = {}): UniformQuantRecord => ({
    bits: 4,
    groupSize: 4,
    sym: false,
    rows: 2,
    cols: 8,
    scales: Float32Array.from([0.5, 0.25, roundToF16(0.1), 2]),
    zeros: Uint8Array.from([3, 8, 0, 15]),
    gIdx: Int32Array.from([0, 0, 0, 0, 1, 1, 1, 1]),
    codes: Uint8Array.from([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]),
    ...over,
  })

  it('packs a Linear and decodes W = scale · (q − z) per (group, row)', () => {
    const r = record()
    for (const f of ['gptq', 'gptq_v2'] as const) {
      const w = dequantizeGptq(packGptqLinear(r, f, 't'), 2, 8, 4, f)
      // row 0, group 0: 0.5·(q − 3); row 1, group 1: 2·(q − 15)
      expect(w[0]).toBe(0.5 * (0 - 3))
      expect(w[3]).toBe(0.5 * (3 - 3))
      expect(w[4]).toBe(Math.fround(roundToF16(0.1) * 4))
      expect(w[8]).toBe(0.25 * (8 - 8))
      expect(w[15]).toBe(2 * (15 - 15))
      expect(w[12]).toBe(2 * (12 - 15))
    }
  })

  it('rejects records that do not fit their own shape or range', () => {
    expect(() => validateRecord(record({ scales: Float32Array.from([0.1, 1, 1, 1]) }), 't')).toThrow(/fp16/)
    expect(() => validateRecord(record({ zeros: Uint8Array.from([0, 0, 16, 0]) }), 't')).toThrow(/zero point 16/)
    expect(() => validateRecord(record({ gIdx: Int32Array.from([0, 0, 0, 0, 1, 1, 1, 2]) }), 't')).toThrow(/g_idx 2/)
    expect(() => validateRecord(record({ codes: new Uint8Array(15) }), 't')).toThrow(/15 codes/)
    expect(() => packGptqLinear(record({ bits: 5, zeros: new Uint8Array(4) }), 'gptq', 't')).toThrow(/2, 3, 4 or 8/)
  })
})
