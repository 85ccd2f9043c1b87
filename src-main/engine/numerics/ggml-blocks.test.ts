// The one ggml block table against gguf-py's GGML_QUANT_SIZES (written out here by hand) and against the
// kernels' own block tables (kernels/ cannot import it, so agreement is checked here). The reader's view
// of it is checked in formats/ggml-types.test.ts.

import { describe, expect, it } from 'vitest'
import { BLOCK_GEOMETRY, BLOCK_TYPES } from '../../../kernels/reference/ggml-dequant-all'
import { bitsPerWeight, GGML_BLOCKS, ggmlBlockById, ggmlBlockByName, ggmlBytes, mainGgmlType } from './ggml-blocks'

/** gguf-py constants.py GGML_QUANT_SIZES: name -> [block elements, bytes per block], and the type ids. */
const GGUF_PY: Readonly<Record<string, [number, number, number]>> = {
  F32: [0, 1, 4],
  F16: [1, 1, 2],
  Q4_0: [2, 32, 18],
  Q4_1: [3, 32, 20],
  Q5_0: [6, 32, 22],
  Q5_1: [7, 32, 24],
  Q8_0: [8, 32, 34],
  Q8_1: [9, 32, 36],
  Q2_K: [10, 256, 84],
  Q3_K: [11, 256, 110],
  Q4_K: [12, 256, 144],
  Q5_K: [13, 256, 176],
  Q6_K: [14, 256, 210],
  Q8_K: [15, 256, 292],
  IQ2_XXS: [16, 256, 66],
  IQ2_XS: [17, 256, 74],
  IQ3_XXS: [18, 256, 98],
  IQ1_S: [19, 256, 50],
  IQ4_NL: [20, 32, 18],
  IQ3_S: [21, 256, 110],
  IQ2_S: [22, 256, 82],
  IQ4_XS: [23, 256, 136],
  I8: [24, 1, 1],
  I16: [25, 1, 2],
  I32: [26, 1, 4],
  I64: [27, 1, 8],
  F64: [28, 1, 8],
  IQ1_M: [29, 256, 56],
  BF16: [30, 1, 2],
  TQ1_0: [34, 256, 54],
  TQ2_0: [35, 256, 66],
  MXFP4: [39, 32, 17],
}

describe('the ggml block table', () => {
  it("has gguf-py's id, block size and bytes for every type, and nothing else", () => {
    expect(GGML_BLOCKS.map((b) => b.name).sort()).toEqual(Object.keys(GGUF_PY).sort())
    for (const b of GGML_BLOCKS) expect([b.id, b.blockElements, b.blockBytes], b.name).toEqual(GGUF_PY[b.name])
    for (const [name, [id]] of Object.entries(GGUF_PY)) {
      expect(ggmlBlockById(id)?.name).toBe(name)
      expect(ggmlBlockByName(name)?.id).toBe(id)
    }
    expect(ggmlBlockById(4)).toBeUndefined() // retired upstream
    expect(ggmlBlockByName('constructor')).toBeUndefined()
  })

  it('derives bits per weight: Q5_K is 5.5, the K-quants 2.625 … 6.5625, Q8_0 8.5, F16 16', () => {
    const bpw = (name: string): number => bitsPerWeight(ggmlBlockByName(name)!)
    expect(bpw('Q5_K')).toBeCloseTo(5.5, 12)
    expect(['Q2_K', 'Q3_K', 'Q4_K', 'Q5_K', 'Q6_K'].map(bpw)).toEqual([2.625, 3.4375, 4.5, 5.5, 6.5625])
    expect(['Q8_0', 'Q4_0', 'IQ4_XS', 'TQ2_0', 'F16', 'F32'].map(bpw)).toEqual([8.5, 4.5, 4.25, 2.0625, 16, 32])
    expect(ggmlBytes(ggmlBlockByName('Q5_K')!, 512)).toBe(352)
  })

  it('names a mix by its main type, and a plain type by itself', () => {
    expect(mainGgmlType('Q4_K_M')?.name).toBe('Q4_K')
    expect(mainGgmlType('Q4_K_S')?.name).toBe('Q4_K')
    expect(mainGgmlType('Q3_K_L')?.name).toBe('Q3_K')
    expect(mainGgmlType('Q5_K')?.name).toBe('Q5_K')
    expect(mainGgmlType('IQ2_XS')?.name).toBe('IQ2_XS') // a type of its own, not a mix of "IQ2"
    expect(mainGgmlType('IQ3_S')?.name).toBe('IQ3_S')
    expect(mainGgmlType('Q9_K_M')).toBeUndefined()
    expect(mainGgmlType('constructor')).toBeUndefined()
  })

  it("agrees with the kernels' block table for every type the kernels encode and decode", () => {
    expect(BLOCK_TYPES.length).toBeGreaterThanOrEqual(14)
    for (const type of BLOCK_TYPES) {
      const info = ggmlBlockByName(type)
      expect({ type, elements: info?.blockElements, bytes: info?.blockBytes }).toEqual({
        type,
        elements: BLOCK_GEOMETRY[type].elements,
        bytes: BLOCK_GEOMETRY[type].bytes,
      })
    }
  })
})
