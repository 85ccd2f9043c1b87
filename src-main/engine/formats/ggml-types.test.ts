// The reader's ggml type table is the numerics block table plus the dtype that decodes each type.

import { describe, expect, it } from 'vitest'
import { BLOCK_TYPES } from '../../../kernels/reference/ggml-dequant-all'
import { GGML_BLOCKS } from '../numerics/ggml-blocks'
import { GGML_TYPES, ggmlTypeById, ggmlTypeByName, ggmlTypeForDType } from './ggml-types'

describe('ggml types as the reader sees them', () => {
  it("is the reader's table: every ggml type with the same geometry, decodable exactly where the kernels decode", () => {
    expect(
      GGML_TYPES.map(({ id, name, blockElements, blockBytes }) => ({ id, name, blockElements, blockBytes })),
    ).toEqual(GGML_BLOCKS)
    for (const type of BLOCK_TYPES) expect(ggmlTypeByName(type)?.dtype).toBe(type)
    for (const name of ['IQ2_XXS', 'IQ2_XS', 'IQ3_XXS', 'IQ1_S', 'IQ3_S', 'IQ2_S', 'IQ1_M', 'MXFP4'])
      expect(ggmlTypeByName(name)?.dtype).toBeNull()
    expect(ggmlTypeForDType('U8')).toBeUndefined()
    expect(ggmlTypeForDType('Q8_0')?.id).toBe(8)
    expect(ggmlTypeById(13)).toMatchObject({ name: 'Q5_K', blockElements: 256, blockBytes: 176, dtype: 'Q5_K' })
  })
})
