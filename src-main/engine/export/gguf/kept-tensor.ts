// A GGUF export of a compressed model writes the bytes a recipe's `gguf` step produced for a tensor, as
// they are, when they are in the type the export plans for it (compress/gguf-types/kept-bytes.ts), rather
// than quantizing the step's dequantized weights again. They are used only after decoding them and finding
// the in-memory weights bit for bit, so what perplexity was measured on is what the file holds.

import type { GgufKeptTensor } from '../../compress/gguf-types/kept-bytes'
import { ggufRowBytes, type GgufStorageType } from '../../compress/gguf-types/quantize-tensor'
import { decodeToF32 } from '../../formats/read'
import type { DType, TensorEntry } from '../../formats/types'
import { permuteRowBytes, rowSources } from './names'
import { hfToGgufRows } from '../../arch/rope-permute'
import { decodeTensorF32 } from '../../pool/decode-tensor'
import type { WorkerPool } from '../../pool/worker-pool'

/** The part of a planned export tensor this needs: its (in-memory) entry and row geometry. */
export interface KeptTarget {
  entry: TensorEntry
  rows: number
  cols: number
  /** q/k heads the rows are permuted by on the way out (0 for none). */
  permuteHeads: number
}

function sameBits(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length)
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length)
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false
  return true
}

/**
 * The kept bytes of `t` in GGUF's row order, when they are in `type` and decode exactly to the tensor's
 * current values; null otherwise (then the export quantizes as usual).
 */
export async function keptGgufBytes(
  pool: WorkerPool,
  t: KeptTarget,
  type: GgufStorageType,
  kept: GgufKeptTensor | undefined,
): Promise<Uint8Array | null> {
  if (!kept || kept.type !== type || t.entry.shape.length !== 2 || type === 'F32') return null
  if (kept.bytes.length !== t.rows * ggufRowBytes(type, t.cols)) return null
  const decoded = new Float32Array(t.rows * t.cols)
  decodeToF32(type as DType, kept.bytes, decoded.length, decoded)
  if (!sameBits(decoded, await decodeTensorF32(pool, t.entry))) return null
  // GGUF blocks never span rows, so quantizing permuted rows is permuting the quantized rows.
  return t.permuteHeads > 0 ? permuteRowBytes(kept.bytes, rowSources(t.rows, t.permuteHeads, hfToGgufRows)) : kept.bytes
}
