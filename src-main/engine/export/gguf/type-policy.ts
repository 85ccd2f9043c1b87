// Which ggml type each tensor gets for an export type, and the llama.cpp file-type id that names the mix.
// The mixes Q4_K_M / Q4_K_S follow llama.cpp's per-tensor rules (src/llama-quant.cpp,
// llama_tensor_get_type) for a dense Llama, re-expressed here:
//   - 1-D tensors (norms, biases) stay F32;
//   - output.weight gets Q6_K (it feeds every logit; llama.cpp never lets it drop below Q6_K in these mixes);
//   - Q4_K_M: attn_v and ffn_down get Q6_K in the layers use_more_bits picks (the first and last eighth
//     of the stack, and every third layer between), Q4_K elsewhere;
//   - Q4_K_S: attn_v of the first 4 layers and ffn_down of the first eighth of layers get Q5_K;
//   - everything else gets the base type Q4_K.
// A row that is not a whole number of the chosen type's blocks then falls back (compatibleGgufType).

import type { TensorRole } from '../../../contract/api'
import { WhittleError } from '../../errors'
import type { GgufStorageType } from '../../compress/gguf-types/quantize-tensor'

/** Pure types: every 2-D tensor gets the type (as llama-quantize --pure does); mixes follow the rules above. */
export { GGUF_EXPORT_TYPES, type GgufExportType } from '../../../contract/gguf-export-types'
import { GGUF_EXPORT_TYPES, type GgufExportType } from '../../../contract/gguf-export-types'

/** What a tensor is stored as: the quantizer's types plus BF16, which is a plain re-encoding. */
export type GgufTensorType = GgufStorageType | 'BF16'

/**
 * llama.cpp's LLAMA_FTYPE ids (include/llama.h), written as general.file_type. A pure Q4_K file is labelled
 * Q4_K_M (15), a pure Q5_K file Q5_K_M (17), a pure Q3_K file Q3_K_M (12) and a pure Q6_K file 18, as
 * llama-quantize labels them (checked against the golden files).
 */
export const LLAMA_FILE_TYPE: Readonly<Record<GgufExportType, number>> = {
  F32: 0, F16: 1, Q4_0: 2, Q4_1: 3, Q8_0: 7, Q5_0: 8, Q5_1: 9, Q2_K: 10, Q3_K: 12, Q4_K_S: 14, Q4_K_M: 15, Q4_K: 15,
  Q5_K: 17, Q6_K: 18, IQ4_NL: 25, IQ4_XS: 30, BF16: 32, TQ1_0: 36, TQ2_0: 37,
}

export function isGgufExportType(s: string): s is GgufExportType {
  return (GGUF_EXPORT_TYPES as readonly string[]).includes(s)
}

/** llama.cpp's use_more_bits: the first and last eighth of the layers, and every third layer in between. */
export function useMoreBits(layer: number, layers: number): boolean {
  const eighth = Math.floor(layers / 8)
  return layer < eighth || layer >= Math.floor((7 * layers) / 8) || (layer - eighth) % 3 === 2
}

export interface TensorForPolicy {
  role: TensorRole
  layer: number | null
  /** Number of dimensions (PyTorch order); 1-D tensors are never quantized. */
  rank: number
}

/** The type a tensor is asked to have (before any block-size fallback). */
export function policyType(exportType: GgufExportType, t: TensorForPolicy, layers: number): GgufTensorType {
  if (!isGgufExportType(exportType)) {
    throw new WhittleError('validation', null, `unknown GGUF export type ${String(exportType)} (choose one of ${GGUF_EXPORT_TYPES.join(', ')})`)
  }
  if (t.rank < 2) return 'F32'
  if (exportType !== 'Q4_K_M' && exportType !== 'Q4_K_S') return exportType
  if (t.role === 'lm_head') return 'Q6_K'
  const layer = t.layer ?? 0
  if (exportType === 'Q4_K_M') {
    if ((t.role === 'v' || t.role === 'down') && useMoreBits(layer, layers)) return 'Q6_K'
    return 'Q4_K'
  }
  // Q4_K_S: llama.cpp's Q5_K upgrades.
  if (t.role === 'v' && layer < 4) return 'Q5_K'
  if (t.role === 'down' && layer < Math.floor(layers / 8)) return 'Q5_K'
  return 'Q4_K'
}
