// ggml tensor types as GGUF stores them: numeric id, name, and block geometry.
// Ids and sizes follow ggml's `enum ggml_type` and the block structs in ggml-common.h
// (cross-checked with gguf-py's GGML_QUANT_SIZES). Ids 4, 5 and 31..33, 36..38 were
// retired upstream and must not be reused, which is why the table has gaps.

import type { DType } from './types'

export interface GgmlTypeInfo {
  id: number
  name: string
  /** Elements per block (1 for plain scalar types). */
  blockElements: number
  /** Bytes per block. */
  blockBytes: number
  /** The engine's dtype for this type, or null when Whittle cannot decode it. */
  dtype: DType | null
}

const QK_K = 256

function t(id: number, name: string, blockElements: number, blockBytes: number, dtype: DType | null): GgmlTypeInfo {
  return { id, name, blockElements, blockBytes, dtype }
}

/** Every ggml type id known to the reader. */
export const GGML_TYPES: readonly GgmlTypeInfo[] = [
  t(0, 'F32', 1, 4, 'F32'),
  t(1, 'F16', 1, 2, 'F16'),
  t(2, 'Q4_0', 32, 2 + 16, 'Q4_0'),
  t(3, 'Q4_1', 32, 2 + 2 + 16, 'Q4_1'),
  t(6, 'Q5_0', 32, 2 + 4 + 16, 'Q5_0'),
  t(7, 'Q5_1', 32, 2 + 2 + 4 + 16, 'Q5_1'),
  t(8, 'Q8_0', 32, 2 + 32, 'Q8_0'),
  // d and s packed as two fp16 (ggml_half2), then 32 int8.
  t(9, 'Q8_1', 32, 2 + 2 + 32, 'Q8_1'),
  t(10, 'Q2_K', QK_K, 2 + 2 + QK_K / 16 + QK_K / 4, 'Q2_K'),
  t(11, 'Q3_K', QK_K, 2 + QK_K / 4 + QK_K / 8 + 12, 'Q3_K'),
  t(12, 'Q4_K', QK_K, 2 + 2 + 12 + QK_K / 2, 'Q4_K'),
  t(13, 'Q5_K', QK_K, 2 + 2 + 12 + QK_K / 8 + QK_K / 2, 'Q5_K'),
  t(14, 'Q6_K', QK_K, QK_K / 2 + QK_K / 4 + QK_K / 16 + 2, 'Q6_K'),
  // f32 d, int8 qs[256], int16 bsums[16].
  t(15, 'Q8_K', QK_K, 4 + QK_K + QK_K / 8, 'Q8_K'),
  t(16, 'IQ2_XXS', QK_K, 2 + QK_K / 4, null),
  t(17, 'IQ2_XS', QK_K, 2 + QK_K / 4 + QK_K / 32, null),
  t(18, 'IQ3_XXS', QK_K, 2 + QK_K / 4 + QK_K / 8, null),
  t(19, 'IQ1_S', QK_K, 2 + QK_K / 8 + QK_K / 16, null),
  t(20, 'IQ4_NL', 32, 2 + 16, 'IQ4_NL'),
  t(21, 'IQ3_S', QK_K, 2 + QK_K / 4 + QK_K / 8 + QK_K / 32 + 4, null),
  t(22, 'IQ2_S', QK_K, 2 + QK_K / 4 + QK_K / 16, null),
  t(23, 'IQ4_XS', QK_K, 2 + 2 + QK_K / 2 + QK_K / 64, 'IQ4_XS'),
  t(24, 'I8', 1, 1, 'I8'),
  t(25, 'I16', 1, 2, 'I16'),
  t(26, 'I32', 1, 4, 'I32'),
  t(27, 'I64', 1, 8, 'I64'),
  t(28, 'F64', 1, 8, 'F64'),
  t(29, 'IQ1_M', QK_K, QK_K / 8 + QK_K / 16 + QK_K / 32, null),
  t(30, 'BF16', 1, 2, 'BF16'),
  t(34, 'TQ1_0', QK_K, 2 + 4 * 13, 'TQ1_0'),
  t(35, 'TQ2_0', QK_K, 2 + 64, 'TQ2_0'),
  // e8m0 shared exponent + 16 bytes of 4-bit values.
  t(39, 'MXFP4', 32, 1 + 16, null),
]

const BY_ID = new Map<number, GgmlTypeInfo>(GGML_TYPES.map((x) => [x.id, x]))
const BY_NAME = new Map<string, GgmlTypeInfo>(GGML_TYPES.map((x) => [x.name, x]))

/** The type with this id, or undefined for an id ggml does not define (or retired). */
export function ggmlTypeById(id: number): GgmlTypeInfo | undefined {
  return BY_ID.get(id)
}

/** The type with this name ('Q4_K', 'F32', ...), or undefined. */
export function ggmlTypeByName(name: string): GgmlTypeInfo | undefined {
  return BY_NAME.get(name)
}

/** The ggml type that stores an engine dtype, or undefined when GGUF cannot hold it (e.g. U8, BOOL, F8). */
export function ggmlTypeForDType(dtype: DType): GgmlTypeInfo | undefined {
  const info = BY_NAME.get(dtype)
  return info && info.dtype === dtype ? info : undefined
}
