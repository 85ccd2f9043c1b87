// ggml tensor types as the reader sees them: the geometry table of numerics/ggml-blocks.ts plus the
// engine dtype that decodes each type (null where Whittle cannot decode it).

import { GGML_BLOCKS, type GgmlBlockInfo } from '../numerics/ggml-blocks'
import type { DType } from './types'

export interface GgmlTypeInfo extends GgmlBlockInfo {
  /** The engine's dtype for this type, or null when Whittle cannot decode it. */
  dtype: DType | null
}

/** The ggml types the engine decodes; each is also a DType of the same name. */
const DECODED: ReadonlySet<string> = new Set<DType>([
  'F32',
  'F16',
  'BF16',
  'F64',
  'I8',
  'I16',
  'I32',
  'I64',
  'Q4_0',
  'Q4_1',
  'Q5_0',
  'Q5_1',
  'Q8_0',
  'Q8_1',
  'Q2_K',
  'Q3_K',
  'Q4_K',
  'Q5_K',
  'Q6_K',
  'Q8_K',
  'IQ4_NL',
  'IQ4_XS',
  'TQ1_0',
  'TQ2_0',
])

/** Every ggml type id known to the reader. */
export const GGML_TYPES: readonly GgmlTypeInfo[] = GGML_BLOCKS.map((b) => ({
  ...b,
  dtype: DECODED.has(b.name) ? (b.name as DType) : null,
}))

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
