// The one table of GGUF block-size fallbacks: the type a tensor is stored as when its rows (ggml's ne[0])
// are not a whole number of the asked-for type's blocks. Both the recipe's `gguf` step and the GGUF export
// (export/gguf/type-policy) read it, so a step's fake-quantized weights are exactly what an export of the
// same type writes.
//
// The 256-element types take llama.cpp's tensor_type_fallback (src/llama-quant.cpp): IQ4_XS -> IQ4_NL;
// Q2_K, Q3_K, TQ1_0, TQ2_0 -> Q4_0; Q4_K -> Q5_0; Q5_K -> Q5_1; Q6_K -> Q8_0. Where llama.cpp has no
// fallback (the 32-element types, which it refuses outright on such a row) or the fallback's blocks do not
// fit either, the tensor is stored as F16, which fits any row: Whittle writes the file and says why.

import type { GgufTensorTypeName } from '../../../contract/gguf-export-types'
import { WhittleError } from '../../errors'
import { ggmlBlockByName } from '../../numerics/ggml-blocks'

/** llama.cpp's tensor_type_fallback, for the types that have one. */
export const GGUF_TYPE_FALLBACK: Readonly<Partial<Record<GgufTensorTypeName, GgufTensorTypeName>>> = {
  IQ4_XS: 'IQ4_NL',
  Q2_K: 'Q4_0',
  Q3_K: 'Q4_0',
  TQ1_0: 'Q4_0',
  TQ2_0: 'Q4_0',
  Q4_K: 'Q5_0',
  Q5_K: 'Q5_1',
  Q6_K: 'Q8_0',
}

/** Where nothing else fits: one-element blocks. */
export const LAST_RESORT_TYPE = 'F16' satisfies GgufTensorTypeName

/** Elements per block of a GGUF tensor type (1 for F32/F16/BF16), from the ggml block table. */
export function ggufBlockElements(type: GgufTensorTypeName): number {
  const info = ggmlBlockByName(type)
  if (!info) throw new WhittleError('unsupported', null, `no ggml block geometry for ${type}`) // unreachable: every tensor type is a ggml type
  return info.blockElements
}

/** The type a row of `cols` elements of `type` is stored as, and why when it is not `type` itself. */
export function ggufFallback(type: GgufTensorTypeName, cols: number): { type: GgufTensorTypeName; reason?: string } {
  const block = ggufBlockElements(type)
  if (cols % block === 0) return { type }
  const why = `rows of ${cols} elements are not a whole number of ${type}'s ${block}-element blocks`
  const next = GGUF_TYPE_FALLBACK[type]
  if (next && cols % ggufBlockElements(next) === 0) {
    const nextBlock = ggufBlockElements(next)
    return { type: next, reason: `${why}, so stored as ${next} (${nextBlock}-element blocks; llama.cpp's fallback)` }
  }
  return { type: LAST_RESORT_TYPE, reason: `${why}, so stored as F16 (no block type fits)` }
}
