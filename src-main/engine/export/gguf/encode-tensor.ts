// One tensor's work for the GGUF export: its blocks for the pipeline and its report entry once they are
// encoded. The common paths stream in blocks of rows (tensor-blocks.ts); the rare ones are encoded whole
// (encodeTensor), as one block.

import type { TensorEntry } from '../../formats/types'
import type { TensorRole } from '../../../contract/api'
import { readTensorBytes } from '../../formats/read'
import { decodeTensorF32 } from '../../pool/decode-tensor'
import type { WorkerPool } from '../../pool/worker-pool'
import { compatibleGgufType, quantizeTensorGguf, usesImportance } from '../../compress/gguf-types/quantize-tensor'
import {
  quantizeEntryGgufParallel,
  quantizeTensorGgufParallel,
  sameBits,
  type GgufEncoded,
} from '../../compress/gguf-types/quantize-tensor-parallel'
import { hfToGgufRows } from '../../arch/rope-permute'
import { permuteRowBytes, rowSources } from './names'
import type { GgufTensorType } from './type-policy'
import { encodeBf16Ggml } from '../../numerics/float-encodings'
import { f32Checksum } from './encode'
import { hashBytes, tensorCheck, type TensorCheck } from './tensor-hashes'
import { importanceFor, type ImatrixSource } from '../../formats/imatrix-data'
import type { GgufKeptTensor } from '../../compress/gguf-types/kept-bytes'
import { keptGgufBytes } from './kept-tensor'
import type { BlockJob } from './block-pipeline'
import type { CrcThreads } from './crc-threads'
import { BLOCK_ELEMENTS, canPermuteInBlocks, copyJobs, quantizeJobs, type Exactness } from './tensor-blocks'
import type { GgufTypeRule } from '../../../contract/gguf-export-types'

export interface GgufExportTensor {
  name: string
  type: GgufTensorType
  /** Why `type` differs from what the export type asked for (a row not a whole number of blocks). */
  fallback?: string
  /** The policy's rule that chose the type (type-policy), and the --tensor-type pattern when one did. */
  rule: GgufTypeRule
  pattern?: string
  /** The source tensor's block type when it was already quantized and is quantized again (--allow-requantize). */
  requantizedFrom?: string
  /** For a re-quantized tensor: ‖written − source‖ / ‖source‖ over the decoded values, the second rounding's loss (requantize-loss.ts). */
  requantizeError?: number
  /** Quantized with the importance matrix's entry for this tensor (types that ignore importances, as Q8_0 and F16 do, never are). */
  imatrix?: boolean
  /**
   * The stored values decode to exactly the source's (or the compressed model's) weights: true for
   * F32, lossless copies, and weights that were already fake-quantized to this type.
   */
  exact: boolean
  /** How the written file's tensor was checked (tensor-hashes.ts): its bytes' hash, and its values where needed. */
  check: TensorCheck
  /** The bytes are the recipe's gguf step's, written as they are (not quantized again). */
  kept?: boolean
}

/** A tensor's report entry before the policy's rule and the verification's check are added. */
type EncodedTensor = Omit<GgufExportTensor, 'rule' | 'check'>

/** A tensor of the source as the export writes it. */
export interface PlannedTensor {
  ggufName: string
  entry: TensorEntry
  role: TensorRole
  layer: number | null
  rows: number
  cols: number
  /** q/k heads for the row permutation, or 0 for none. */
  permuteHeads: number
}

/** A quantized tensor's report entry: its stored type, the fallback's reason, and whether an imatrix was used. */
function quantizedEntry(
  p: PlannedTensor,
  q: Pick<GgufEncoded, 'type' | 'fallback' | 'exact'>,
  importance: Float32Array | null,
): EncodedTensor {
  return {
    name: p.ggufName,
    type: q.type,
    ...(q.fallback ? { fallback: q.fallback } : {}),
    ...(importance ? { imatrix: true } : {}),
    exact: q.exact,
  }
}

function parallelResult(
  p: PlannedTensor,
  q: GgufEncoded,
  importance: Float32Array | null,
): { data: Uint8Array; tensor: EncodedTensor; checksum: null } {
  return { data: q.bytes, tensor: quantizedEntry(p, q, importance), checksum: null }
}

/** One tensor's stored bytes, plus what verification should find when it decodes them. */
async function encodeTensor(
  pool: WorkerPool,
  p: PlannedTensor,
  wanted: GgufTensorType,
  imatrix: ImatrixSource | null,
  keptBytes: ReadonlyMap<string, GgufKeptTensor> | null,
): Promise<{ data: Uint8Array; tensor: EncodedTensor; checksum: number | null }> {
  const choice = wanted === 'BF16' ? { type: 'BF16' as const } : compatibleGgufType(wanted, p.cols)
  const fallback = 'fallback' in choice && choice.fallback ? { fallback: choice.fallback } : {}
  const kept = keptBytes?.get(p.entry.name)
  const keptData = choice.type === 'BF16' ? null : await keptGgufBytes(pool, p, choice.type, kept)
  if (keptData && kept) {
    // Every kept type is a ggml type, whose bytes the verification's hash proves (tensor-hashes.ts).
    const tensor = { name: p.ggufName, type: choice.type, ...fallback, ...(kept.imatrix ? { imatrix: true } : {}) }
    return { data: keptData, tensor: { ...tensor, exact: true, kept: true }, checksum: null }
  }
  if (p.entry.dtype === choice.type) {
    // Same encoding as the source: move bytes (GGUF blocks never span rows, so whole rows can be moved).
    let data = await readTensorBytes(p.entry, 0, p.entry.byteLength)
    if (p.permuteHeads > 0) data = permuteRowBytes(data, rowSources(p.rows, p.permuteHeads, hfToGgufRows))
    return { data, tensor: { name: p.ggufName, type: choice.type, ...fallback, exact: true }, checksum: null }
  }
  // Values are decoded again at verification only for a packing whose bytes do not prove them.
  const decodeCheck = tensorCheck(choice.type) !== 'crc32'
  if (choice.type !== 'BF16' && !decodeCheck && p.permuteHeads === 0 && p.entry.shape.length === 2) {
    // The common path: read in blocks of rows (the embedding too, so memory does not grow with the
    // vocabulary) and quantized row-parallel across the workers, byte-identical to quantizeTensorGguf.
    const importance = imatrix && usesImportance(choice.type) ? importanceFor(imatrix, p.ggufName, p.cols) : null
    const storage = wanted as Exclude<GgufTensorType, 'BF16'>
    return parallelResult(p, await quantizeEntryGgufParallel(pool, p.entry, storage, { importance }), importance)
  }
  let w = await decodeTensorF32(pool, p.entry)
  if (p.permuteHeads > 0) w = hfToGgufRows(w, p.rows, p.cols, p.permuteHeads)
  if (choice.type === 'BF16') {
    const { bytes, decoded } = encodeBf16Ggml(w)
    return {
      data: bytes,
      tensor: { name: p.ggufName, type: 'BF16', exact: sameBits(decoded, w) },
      checksum: decodeCheck ? f32Checksum(decoded) : null,
    }
  }
  // Quantize to the requested type: the quantizers apply (and explain) the same fallback.
  // Importances are per input column, so the q/k row permutation above leaves them as they are.
  const importance = imatrix && usesImportance(choice.type) ? importanceFor(imatrix, p.ggufName, p.cols) : null
  const storage = wanted as Exclude<GgufTensorType, 'BF16'>
  if (!decodeCheck) {
    // Permuted q/k rows: row-parallel across the workers on the whole (small) tensor.
    return parallelResult(
      p,
      await quantizeTensorGgufParallel(pool, w, p.rows, p.cols, storage, { importance }),
      importance,
    )
  }
  const q = quantizeTensorGguf(pool, w, p.rows, p.cols, storage, { importance })
  return {
    data: q.bytes,
    tensor: quantizedEntry(p, { ...q, exact: sameBits(q.dequantized, w) }, importance),
    checksum: f32Checksum(q.dequantized),
  }
}

/** A tensor's blocks for the pipeline, and its report entry once they are encoded. */
export interface TensorWork {
  jobs: BlockJob[]
  finish(): { tensor: EncodedTensor; checksum: number | null; data: Uint8Array | null }
}

/**
 * The common paths stream in blocks of rows (tensor-blocks.ts): bytes moved as they are when the source
 * is already in the stored type, and 2-D tensors quantized straight from the file (q/k rows permuted
 * block by block). Everything else (kept bytes, BF16, decode-checked packings, re-quantized tensors whose
 * loss is measured, q/k rows of a dtype the workers do not decode) is encoded whole by encodeTensor, as
 * one block.
 */
export function tensorWork(
  pool: WorkerPool,
  crc: CrcThreads,
  p: PlannedTensor,
  wanted: GgufTensorType,
  imatrix: ImatrixSource | null,
  keptBytes: ReadonlyMap<string, GgufKeptTensor> | null,
  byteLength: number,
  needsData: boolean,
): TensorWork {
  const choice = wanted === 'BF16' ? null : compatibleGgufType(wanted, p.cols)
  const streams = choice !== null && !needsData && !keptBytes?.has(p.entry.name)
  if (streams && p.entry.dtype === choice.type) {
    const sources = p.permuteHeads > 0 ? rowSources(p.rows, p.permuteHeads, hfToGgufRows) : null
    const fallback = choice.fallback ? { fallback: choice.fallback } : {}
    return {
      jobs: copyJobs(pool, crc, p.entry, p.rows, sources, p.permuteHeads),
      finish: () => ({
        tensor: { name: p.ggufName, type: choice.type, ...fallback, exact: true },
        checksum: null,
        data: null,
      }),
    }
  }
  const permutable = p.permuteHeads === 0 || canPermuteInBlocks(p.entry)
  if (streams && tensorCheck(choice.type) !== 'crc32+decode' && permutable && p.entry.shape.length === 2) {
    // Importances are per input column, so the q/k row permutation leaves them as they are.
    const importance = imatrix && usesImportance(choice.type) ? importanceFor(imatrix, p.ggufName, p.cols) : null
    const exactness: Exactness = { exact: true }
    const storage = wanted as Exclude<GgufTensorType, 'BF16'>
    const permutation =
      p.permuteHeads > 0 ? { sources: rowSources(p.rows, p.permuteHeads, hfToGgufRows), heads: p.permuteHeads } : null
    return {
      jobs: quantizeJobs(pool, crc, p.entry, storage, importance, exactness, BLOCK_ELEMENTS, permutation),
      finish: () => ({
        tensor: quantizedEntry(p, { ...choice, exact: exactness.exact }, importance),
        checksum: null,
        data: null,
      }),
    }
  }
  let whole: Awaited<ReturnType<typeof encodeTensor>> | null = null
  return {
    jobs: [
      {
        bytes: byteLength,
        async run() {
          whole = await encodeTensor(pool, p, wanted, imatrix, keptBytes)
          // A whole tensor's bytes are in this thread's memory (small tensors, mostly): hashed here.
          return { bytes: whole.data, crc: hashBytes(whole.data) }
        },
      },
    ],
    finish: () => {
      const done = whole!
      whole = null
      return { tensor: done.tensor, checksum: done.checksum, data: done.data }
    },
  }
}
