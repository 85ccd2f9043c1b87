// Quantizes a weight matrix to a GGUF storage type with the WASM kernels (byte-exact with llama.cpp's
// llama-quantize without an importance matrix), and dequantizes it back so callers can measure or run
// the exact weights a GGUF reader will see.
//
// GGUF blocks run along a row (dims[0], the input columns), so a row must be a whole number of blocks.
// llama.cpp refuses a type whose block does not divide the row length (stories260K's ffn_down has 172
// columns); Whittle instead keeps such a tensor in the closest type that fits and says so.

import { WhittleError } from '../../errors'
import type { WorkerPool } from '../../pool/worker-pool'
import type { Region } from '../../pool/memory-arena'
import type { KernelName } from '../../../../kernels/host/exports'
import { QUANT_BLOCKS, type QuantType } from '../../../../kernels/reference/ggml-quantize'

/** What a GGUF tensor can be stored as here: the five quantized types, or plain halves/floats. */
export type GgufStorageType = QuantType | 'F16' | 'F32'

export const GGUF_STORAGE_TYPES: readonly GgufStorageType[] = ['Q8_0', 'Q4_0', 'Q4_K', 'Q5_K', 'Q6_K', 'F16', 'F32']

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
  F16: { blockElements: 1, blockBytes: 2, quantize: 'encode_f16', decode: 'convert_f16' },
  F32: { blockElements: 1, blockBytes: 4, quantize: null, decode: null },
}

function blocks(type: QuantType): { blockElements: number; blockBytes: number } {
  return { blockElements: QUANT_BLOCKS[type].elements, blockBytes: QUANT_BLOCKS[type].bytes }
}

/**
 * Fallbacks when a row is not a whole number of blocks. A K-quant (256) goes to Q8_0 when the row is a
 * whole number of 32-element blocks: the only 32-block type here that loses no more than the K-quant
 * (llama.cpp's own fallbacks also move to a finer 32-block type, e.g. Q4_K -> Q5_0, Q6_K -> Q8_0). Any
 * type whose blocks still do not fit ends in F16, which fits every row and is close to lossless.
 */
const FALLBACK: Readonly<Record<GgufStorageType, GgufStorageType | null>> = {
  Q4_K: 'Q8_0',
  Q5_K: 'Q8_0',
  Q6_K: 'Q8_0',
  Q4_0: 'F16',
  Q8_0: 'F16',
  F16: null,
  F32: null,
}

/** The type a row of `cols` elements can be stored as, starting from `type` and following FALLBACK. */
export function compatibleGgufType(type: GgufStorageType, cols: number): GgufTypeChoice {
  if (!Object.hasOwn(GEOMETRY, type)) throw new WhittleError('validation', null, `GGUF type ${String(type)} cannot be written (supported: ${GGUF_STORAGE_TYPES.join(', ')})`)
  if (!Number.isSafeInteger(cols) || cols < 1) throw new WhittleError('validation', null, `a tensor row of ${cols} elements cannot be stored`)
  let chosen = type
  while (cols % GEOMETRY[chosen].blockElements !== 0) {
    const next = FALLBACK[chosen]
    if (!next) break // unreachable: F16 and F32 have 1-element blocks
    chosen = next
  }
  if (chosen === type) return { type }
  const block = GEOMETRY[type].blockElements
  const why = `rows of ${cols} elements are not a whole number of ${type}'s ${block}-element blocks`
  const where = chosen === 'F16' ? 'F16 (no block type fits)' : `${chosen} (${GEOMETRY[chosen].blockElements}-element blocks)`
  return { type: chosen, fallback: `${why}, so stored as ${where}` }
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
}

/**
 * Quantizes W [rows, cols] (row-major f32) to `type`, or to compatibleGgufType's fallback when a row is
 * not a whole number of `type`'s blocks, on this thread with pool.kernels. Rows pass through the kernel
 * memory in chunks, so the arena holds at most a chunk's input and output whatever the tensor's size.
 */
export function quantizeTensorGguf(
  pool: WorkerPool, w: Float32Array, rows: number, cols: number, type: GgufStorageType, options: QuantizeTensorOptions = {},
): GgufQuantized {
  if (!Number.isSafeInteger(rows) || rows < 0) throw new WhittleError('validation', null, `cannot quantize a tensor of ${rows} rows`)
  const choice = compatibleGgufType(type, cols)
  if (w.length !== rows * cols) {
    throw new WhittleError('validation', null, `quantizing [${rows}, ${cols}] needs ${rows * cols} weights, got ${w.length}`)
  }
  const geometry = GEOMETRY[choice.type]
  const rowBytes = ggufRowBytes(choice.type, cols)
  const bytes = new Uint8Array(rows * rowBytes)
  const dequantized = new Float32Array(rows * cols)
  const result: GgufQuantized = { bytes, dequantized, type: choice.type, ...(choice.fallback ? { fallback: choice.fallback } : {}) }
  if (rows === 0) return result
  if (!geometry.quantize || !geometry.decode) {
    // F32: stored as is.
    new Uint8Array(bytes.buffer).set(new Uint8Array(w.buffer, w.byteOffset, w.byteLength))
    dequantized.set(w)
    return result
  }

  const chunkElements = options.chunkElements ?? DEFAULT_CHUNK_ELEMENTS
  const chunkRows = Math.max(1, Math.min(rows, Math.floor(chunkElements / cols)))
  const kernels = pool.kernels as unknown as Record<KernelName, (src: number, dst: number, count: number) => void>
  const quantize = kernels[geometry.quantize]
  const decode = kernels[geometry.decode]
  const regions: Region[] = []
  try {
    // The f32 region takes the weights in and, once they are quantized, the dequantized values back out.
    const values = pool.arena.alloc(chunkRows * cols * 4)
    regions.push(values)
    const packed = pool.arena.alloc(chunkRows * rowBytes)
    regions.push(packed)
    for (let r0 = 0; r0 < rows; r0 += chunkRows) {
      const n = Math.min(chunkRows, rows - r0)
      const elements = n * cols
      const units = elements / geometry.blockElements
      // Views are made after every allocation (memory.grow replaces the buffer), never kept across one.
      pool.arena.f32(values, 0, elements).set(w.subarray(r0 * cols, r0 * cols + elements))
      quantize(values.ptr, packed.ptr, units)
      decode(packed.ptr, values.ptr, units)
      bytes.set(pool.arena.u8(packed, 0, n * rowBytes), r0 * rowBytes)
      dequantized.set(pool.arena.f32(values, 0, elements), r0 * cols)
    }
  } finally {
    for (const region of regions) pool.arena.release(region)
  }
  return result
}
