// The GGUF bytes a recipe's `gguf` step produced, kept beside the fake-quantized weights so that an export
// to the same type writes exactly those bytes instead of quantizing the dequantized values again (which
// need not give the same blocks: the K-quants' scale searches fit the rounded values afresh). The export
// still decodes them and checks that they give the in-memory weights bit for bit before using them, so
// an entry that a later step made stale is never written.

import type { GgufStorageType } from './quantize-tensor'

export interface GgufKeptTensor {
  /** The storage type the bytes are in (the step's type, or its fallback for this tensor's rows). */
  type: GgufStorageType
  /** rows × (bytes per row), in the model's own row order (HF layout: q/k rows not yet permuted). */
  bytes: Uint8Array
  /** Quantized with importances (an imatrix file's entry or the calibration's Σx²). */
  imatrix: boolean
}

/** By tensor name (the model's, not GGUF's): the bytes of each tensor whose last step was `gguf`. */
export type GgufKeptBytes = Map<string, GgufKeptTensor>

/**
 * At most this many bytes are kept (the model view's own in-memory budget for replaced weights): past it a
 * tensor's bytes are not kept, and an export quantizes its dequantized weights again, as it would without.
 */
export const GGUF_KEPT_BUDGET = 512 << 20

/** Records `kept` as `name`'s bytes (or forgets the name's old ones), within GGUF_KEPT_BUDGET. */
export function keepGgufBytes(map: GgufKeptBytes, name: string, kept: GgufKeptTensor | undefined): void {
  map.delete(name)
  if (!kept) return
  let total = kept.bytes.byteLength
  for (const k of map.values()) total += k.bytes.byteLength
  if (total <= GGUF_KEPT_BUDGET) map.set(name, kept)
}
