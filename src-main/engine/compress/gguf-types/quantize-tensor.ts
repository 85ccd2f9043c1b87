// Quantizes a weight matrix to a GGUF storage type with the WASM kernels (byte-exact with llama.cpp's
// llama-quantize without an importance matrix, for every type llama-quantize writes from Q2_K to Q8_0,
// IQ4_NL/IQ4_XS and the ternary TQ1_0/TQ2_0), and dequantizes it back so callers can measure or run the
// exact weights a GGUF reader will see.
//
// GGUF blocks run along a row (dims[0], the input columns), so a row must be a whole number of blocks.
// Such a tensor falls back as llama.cpp's tensor_type_fallback says (./fallback.ts); where llama.cpp
// refuses it (stories260K's ffn_down has 172 columns), Whittle stores it as F16 and says so.

import { WhittleError } from '../../errors'
import type { WorkerPool } from '../../pool/worker-pool'
import type { Region } from '../../pool/memory-arena'
import { QUANT_SCRATCH_BYTES, type KernelName } from '../../../../kernels/host/exports'
import type { BlockType } from '../../../../kernels/reference/ggml-dequant-all'
import { ggmlBlockByName } from '../../numerics/ggml-blocks'
import { IMATRIX_TYPES } from '../../../../kernels/reference/ggml-quantize-imatrix'
import { ggufFallback } from './fallback'
import { GGUF_QUANT_TYPES } from '../../../contract/gguf-export-types'

/** What a GGUF tensor can be stored as here: a quantized block type, or plain halves/floats. */
export type GgufStorageType = BlockType | 'F16' | 'F32'

export const GGUF_STORAGE_TYPES: readonly GgufStorageType[] = [...GGUF_QUANT_TYPES, 'F16', 'F32']

export interface GgufTypeChoice {
  type: GgufStorageType
  /** Why `type` differs from the one asked for (for the compression report); absent when it does not. */
  fallback?: string
}

export interface GgufQuantized {
  /** rows * (bytes per row), rows back to back, as GGUF stores the tensor's data. */
  bytes: Uint8Array
  /** The values a GGUF reader decodes from `bytes`, [rows, cols] row-major. */
  dequantized: Float32Array
  /** The type `bytes` is in (the requested one, or its fallback). */
  type: GgufStorageType
  fallback?: string
}

interface StorageGeometry {
  blockElements: number
  blockBytes: number
  quantize: KernelName | null
  decode: KernelName | null
}

const GEOMETRY: Readonly<Record<GgufStorageType, StorageGeometry>> = {
  Q8_0: { ...blocks('Q8_0'), quantize: 'quantize_q8_0', decode: 'dequant_q8_0' },
  Q4_0: { ...blocks('Q4_0'), quantize: 'quantize_q4_0', decode: 'dequant_q4_0' },
  Q4_K: { ...blocks('Q4_K'), quantize: 'quantize_q4_k', decode: 'dequant_q4_k' },
  Q5_K: { ...blocks('Q5_K'), quantize: 'quantize_q5_k', decode: 'dequant_q5_k' },
  Q6_K: { ...blocks('Q6_K'), quantize: 'quantize_q6_k', decode: 'dequant_q6_k' },
  Q4_1: { ...blocks('Q4_1'), quantize: 'quantize_q4_1', decode: 'dequant_q4_1' },
  Q5_0: { ...blocks('Q5_0'), quantize: 'quantize_q5_0', decode: 'dequant_q5_0' },
  Q5_1: { ...blocks('Q5_1'), quantize: 'quantize_q5_1', decode: 'dequant_q5_1' },
  Q2_K: { ...blocks('Q2_K'), quantize: 'quantize_q2_k', decode: 'dequant_q2_k' },
  Q3_K: { ...blocks('Q3_K'), quantize: 'quantize_q3_k', decode: 'dequant_q3_k' },
  IQ4_NL: { ...blocks('IQ4_NL'), quantize: 'quantize_iq4_nl', decode: 'dequant_iq4_nl' },
  IQ4_XS: { ...blocks('IQ4_XS'), quantize: 'quantize_iq4_xs', decode: 'dequant_iq4_xs' },
  TQ1_0: { ...blocks('TQ1_0'), quantize: 'quantize_tq1_0', decode: 'dequant_tq1_0' },
  TQ2_0: { ...blocks('TQ2_0'), quantize: 'quantize_tq2_0', decode: 'dequant_tq2_0' },
  F16: { ...blocks('F16'), quantize: 'encode_f16', decode: 'convert_f16' },
  F32: { ...blocks('F32'), quantize: null, decode: null },
}

/** A storage type's geometry, from the one ggml block table (every storage type is a ggml type). */
function blocks(type: GgufStorageType): { blockElements: number; blockBytes: number } {
  const info = ggmlBlockByName(type)
  if (!info) throw new Error(`${type} is missing from the ggml block table`) // unreachable: a module-load invariant
  return { blockElements: info.blockElements, blockBytes: info.blockBytes }
}

/**
 * The type a row of `cols` elements can be stored as, starting from `type`: the one fallback table
 * (./fallback.ts, llama.cpp's), shared with the GGUF export.
 */
export function compatibleGgufType(type: GgufStorageType, cols: number): GgufTypeChoice {
  if (!Object.hasOwn(GEOMETRY, type))
    throw new WhittleError(
      'validation',
      null,
      `GGUF type ${String(type)} cannot be written (supported: ${GGUF_STORAGE_TYPES.join(', ')})`,
    )
  if (!Number.isSafeInteger(cols) || cols < 1)
    throw new WhittleError('validation', null, `a tensor row of ${cols} elements cannot be stored`)
  const fitted = ggufFallback(type, cols)
  // Every fallback (IQ4_NL, Q4_0, Q5_0, Q5_1, Q8_0, F16) is a storage type the kernels write.
  const chosen = fitted.type as GgufStorageType
  return fitted.reason ? { type: chosen, fallback: fitted.reason } : { type: chosen }
}

/** Bytes of one row of `cols` elements of `type` (cols must be a whole number of its blocks). */
export function ggufRowBytes(type: GgufStorageType, cols: number): number {
  const g = GEOMETRY[type]
  return (cols / g.blockElements) * g.blockBytes
}

/** Elements per pass through the kernel memory: bounds the arena use to about 2 x 4 x this many bytes. */
const DEFAULT_CHUNK_ELEMENTS = 1 << 22

export interface QuantizeTensorOptions {
  /** Elements quantized per pass (whole rows; at least one row). Default 4M. */
  chunkElements?: number
  /**
   * Per-input-column importances [cols] (an imatrix's Σx² / count for this tensor): quantize as
   * llama-quantize --imatrix does. Types that take no importance matrix (Q8_0, TQ1_0, TQ2_0, F16) ignore it.
   */
  importance?: Float32Array | null
}

/** Whether quantizing to `type` weighs by importances (Q8_0, the ternary types and F16/F32 ignore them, as in llama.cpp). */
export function usesImportance(type: GgufStorageType): boolean {
  return (IMATRIX_TYPES as readonly string[]).includes(type)
}

/** The kernel that quantizes whole rows of `type` with importances, if the type uses them. */
function imatrixKernel(type: GgufStorageType): KernelName | null {
  return usesImportance(type) ? (`quantize_${type.toLowerCase()}_imatrix` as KernelName) : null
}

/** The kernels behind `type` (null for F32, stored as is) and its block shape, for callers that split the work. */
export function ggufKernels(type: GgufStorageType): {
  blockElements: number
  quantize: KernelName | null
  decode: KernelName | null
  /** The quantizer that weighs by importances, when the type uses them. */
  weighted: KernelName | null
} {
  const g = GEOMETRY[type]
  return { blockElements: g.blockElements, quantize: g.quantize, decode: g.decode, weighted: imatrixKernel(type) }
}

/** Checks a quantization's input and picks the stored type (the requested one or its fallback). */
export function checkQuantizeInput(
  w: Float32Array,
  rows: number,
  cols: number,
  type: GgufStorageType,
  importance: Float32Array | null,
): { choice: GgufTypeChoice; importance: Float32Array | null } {
  if (!Number.isSafeInteger(rows) || rows < 0)
    throw new WhittleError('validation', null, `cannot quantize a tensor of ${rows} rows`)
  const choice = compatibleGgufType(type, cols)
  if (w.length !== rows * cols) {
    throw new WhittleError(
      'validation',
      null,
      `quantizing [${rows}, ${cols}] needs ${rows * cols} weights, got ${w.length}`,
    )
  }
  if (importance && (importance.length !== cols || !importance.every((v) => Number.isFinite(v) && v >= 0))) {
    throw new WhittleError(
      'validation',
      null,
      `the importance matrix row for [${rows}, ${cols}] must hold ${cols} finite non-negative values (it has ${importance.length})`,
    )
  }
  return { choice, importance }
}

/**
 * Quantizes W [rows, cols] (row-major f32) to `type`, or to compatibleGgufType's fallback when a row is
 * not a whole number of `type`'s blocks, on this thread with pool.kernels. Rows pass through the kernel
 * memory in chunks, so the arena holds at most a chunk's input and output whatever the tensor's size.
 */
export function quantizeTensorGguf(
  pool: WorkerPool,
  w: Float32Array,
  rows: number,
  cols: number,
  type: GgufStorageType,
  options: QuantizeTensorOptions = {},
): GgufQuantized {
  const { choice, importance } = checkQuantizeInput(w, rows, cols, type, options.importance ?? null)
  const geometry = GEOMETRY[choice.type]
  const weighted = importance ? imatrixKernel(choice.type) : null
  const rowBytes = ggufRowBytes(choice.type, cols)
  const bytes = new Uint8Array(rows * rowBytes)
  const dequantized = new Float32Array(rows * cols)
  const result: GgufQuantized = {
    bytes,
    dequantized,
    type: choice.type,
    ...(choice.fallback ? { fallback: choice.fallback } : {}),
  }
  if (rows === 0) return result
  if (!geometry.quantize || !geometry.decode) {
    // F32: stored as is.
    new Uint8Array(bytes.buffer).set(new Uint8Array(w.buffer, w.byteOffset, w.byteLength))
    dequantized.set(w)
    return result
  }

  const chunkElements = options.chunkElements ?? DEFAULT_CHUNK_ELEMENTS
  const chunkRows = Math.max(1, Math.min(rows, Math.floor(chunkElements / cols)))
  // Some quantizers (the K-quants, IQ4_NL, IQ4_XS) need a little scratch memory; the others ignore the fourth argument.
  const kernels = pool.kernels as unknown as Record<
    KernelName,
    (src: number, dst: number, count: number, scratch?: number) => void
  >
  const weightedKernels = pool.kernels as unknown as Record<
    KernelName,
    (src: number, dst: number, rows: number, cols: number, qw: number, scratch: number) => void
  >
  const quantize = kernels[geometry.quantize]
  const decode = kernels[geometry.decode]
  const regions: Region[] = []
  try {
    // The f32 region takes the weights in and, once they are quantized, the dequantized values back out.
    const values = pool.arena.alloc(chunkRows * cols * 4)
    regions.push(values)
    const packed = pool.arena.alloc(chunkRows * rowBytes)
    regions.push(packed)
    const scratch = pool.arena.alloc(QUANT_SCRATCH_BYTES, 'quantizer scratch')
    regions.push(scratch)
    const qw = weighted ? pool.arena.alloc(cols * 4, 'importance row') : null
    if (qw) {
      regions.push(qw)
      pool.arena.f32(qw, 0, cols).set(importance!)
    }
    for (let r0 = 0; r0 < rows; r0 += chunkRows) {
      const n = Math.min(chunkRows, rows - r0)
      const elements = n * cols
      const units = elements / geometry.blockElements
      // Views are made after every allocation (memory.grow replaces the buffer), never kept across one.
      pool.arena.f32(values, 0, elements).set(w.subarray(r0 * cols, r0 * cols + elements))
      if (weighted) weightedKernels[weighted](values.ptr, packed.ptr, n, cols, qw!.ptr, scratch.ptr)
      else quantize(values.ptr, packed.ptr, units, scratch.ptr)
      decode(packed.ptr, values.ptr, units)
      bytes.set(pool.arena.u8(packed, 0, n * rowBytes), r0 * rowBytes)
      dequantized.set(pool.arena.f32(values, 0, elements), r0 * cols)
    }
  } finally {
    for (const region of regions) pool.arena.release(region)
  }
  return result
}
