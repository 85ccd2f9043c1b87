// Storage geometry of every engine dtype, plus overflow-safe size arithmetic shared by the readers.
// Plain element types are blocks of one element; GGUF block types take their geometry from ggml-types.

import type { DType, TensorEntry } from './types'
import { ggmlTypeByName } from './ggml-types'

export interface DTypeGeometry {
  blockElements: number
  blockBytes: number
}

/** A Map: dtype names come from files, and a plain object would answer "constructor" with a function. */
const PLAIN_SIZES = new Map<string, number>(
  Object.entries({
    F64: 8,
    F32: 4,
    F16: 2,
    BF16: 2,
    F8_E4M3: 1,
    F8_E5M2: 1,
    I64: 8,
    I32: 4,
    I16: 2,
    I8: 1,
    U64: 8,
    U32: 4,
    U16: 2,
    U8: 1,
    BOOL: 1,
  }),
)

/** Dtype names a safetensors header may use that Whittle reads (GGUF block types are not safetensors dtypes). */
export const SAFETENSORS_DTYPES: readonly DType[] = [
  'F64',
  'F32',
  'F16',
  'BF16',
  'F8_E4M3',
  'F8_E5M2',
  'I64',
  'I32',
  'I16',
  'I8',
  'U64',
  'U32',
  'U16',
  'U8',
  'BOOL',
]

export function dtypeGeometry(dtype: DType): DTypeGeometry {
  const plain = PLAIN_SIZES.get(dtype)
  if (plain !== undefined) return { blockElements: 1, blockBytes: plain }
  const g = ggmlTypeByName(dtype)
  if (!g) throw new Error(`no geometry for dtype ${dtype}`) // unreachable for a valid DType
  return { blockElements: g.blockElements, blockBytes: g.blockBytes }
}

/** a*b when the result is a safe integer, else null. Inputs must be non-negative safe integers. */
export function safeMultiply(a: number, b: number): number | null {
  if (a === 0 || b === 0) return 0
  const p = a * b
  return Number.isSafeInteger(p) && p / b === a ? p : null
}

/** Product of dims when every dim is a non-negative safe integer and the product stays safe, else null. */
export function safeProduct(dims: readonly number[]): number | null {
  let n = 1
  for (const d of dims) {
    if (!Number.isSafeInteger(d) || d < 0) return null
    const next = safeMultiply(n, d)
    if (next === null) return null
    n = next
  }
  return n
}

export function elementCount(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1)
}

/**
 * Elements in one row: all dims but the outermost (a Linear weight's row is one output's inputs).
 * A 1-D tensor is one row; a scalar is a row of one.
 */
export function rowElements(entry: Pick<TensorEntry, 'shape'>): number {
  if (entry.shape.length === 0) return 1
  if (entry.shape.length === 1) return entry.shape[0]
  return elementCount(entry.shape.slice(1))
}

/** Bytes in one row; for block types a row is always a whole number of blocks (the readers enforce it). */
export function rowBytes(entry: Pick<TensorEntry, 'shape' | 'dtype'>): number {
  const g = dtypeGeometry(entry.dtype)
  return (rowElements(entry) / g.blockElements) * g.blockBytes
}

/** Bytes that `elements` elements occupy; `elements` must be a whole number of blocks. */
export function bytesForElements(dtype: DType, elements: number): number {
  const g = dtypeGeometry(dtype)
  return (elements / g.blockElements) * g.blockBytes
}
