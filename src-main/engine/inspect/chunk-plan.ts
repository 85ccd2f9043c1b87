// How a tensor is cut into chunks that stream through the kernel memory.
// A chunk is a run of whole rows (a row being all dims but the first), so per-row statistics never
// straddle chunks and GGUF blocks, which never straddle rows, never straddle chunks either.

import type { TensorEntry } from '../formats/types'
import { WhittleError } from '../errors'
import { bytesForElements, dtypeGeometry } from '../formats/dtype-info'

/** ~4 MiB of f32 per chunk: big enough to amortise a worker round trip, small enough to stay in L2/L3. */
export const TARGET_CHUNK_ELEMENTS = 1 << 20
/**
 * Raw bytes per chunk: one read of this size, and a chunk the fused scan keeps in a core's L2 cache while
 * it works through it (measured on a 2 MiB-L2 machine: 8 MiB chunks scanned 3x slower than 2 MiB ones).
 */
export const TARGET_CHUNK_BYTES = 2 << 20
/** Rows longer than this are streamed flat, without per-channel statistics. */
export const MAX_ROW_ELEMENTS = 1 << 24

export interface TensorGeometry {
  numel: number
  /** Rows x cols view used for channel statistics; null for 1-D or over-long rows. */
  matrix: { rows: number; cols: number } | null
}

export interface Chunk {
  index: number
  /** First element of the chunk. */
  elementStart: number
  elements: number
  /** Byte range relative to the tensor's first byte. */
  byteStart: number
  byteLength: number
  /** Present in matrix mode. */
  rowStart: number
  rows: number
}

export function tensorGeometry(entry: TensorEntry): TensorGeometry {
  const numel = entry.shape.reduce((a, b) => a * b, 1)
  if (entry.shape.length < 2 || numel === 0) return { numel, matrix: null }
  const rows = entry.shape[0]
  const cols = numel / rows
  if (cols > MAX_ROW_ELEMENTS) return { numel, matrix: null }
  return { numel, matrix: { rows, cols } }
}

/**
 * Elements per chunk for `entry`: about TARGET_CHUNK_BYTES of its bytes, never more than
 * TARGET_CHUNK_ELEMENTS (which bounds the f32 staging of dtypes that are decoded first).
 */
export function chunkElementsFor(entry: TensorEntry): number {
  const g = dtypeGeometry(entry.dtype)
  const perElement = g.blockBytes / g.blockElements
  return Math.max(1, Math.min(TARGET_CHUNK_ELEMENTS, Math.floor(TARGET_CHUNK_BYTES / perElement)))
}

export function planChunks(entry: TensorEntry, geometry: TensorGeometry, target = TARGET_CHUNK_ELEMENTS): Chunk[] {
  const block = dtypeGeometry(entry.dtype).blockElements
  const chunks: Chunk[] = []
  if (geometry.matrix) {
    const { rows, cols } = geometry.matrix
    if (cols % block !== 0)
      throw new WhittleError(
        'format',
        entry.file,
        `tensor ${entry.name}: row of ${cols} is not a whole number of ${entry.dtype} blocks`,
      )
    const rowsPerChunk = Math.max(1, Math.floor(target / cols))
    for (let r = 0; r < rows; r += rowsPerChunk) {
      const n = Math.min(rowsPerChunk, rows - r)
      chunks.push({
        index: chunks.length,
        elementStart: r * cols,
        elements: n * cols,
        byteStart: bytesForElements(entry.dtype, r * cols),
        byteLength: bytesForElements(entry.dtype, n * cols),
        rowStart: r,
        rows: n,
      })
    }
  } else {
    const step = Math.max(block, Math.floor(target / block) * block)
    if (geometry.numel % block !== 0)
      throw new WhittleError(
        'format',
        entry.file,
        `tensor ${entry.name}: ${geometry.numel} elements is not a whole number of ${entry.dtype} blocks`,
      )
    for (let e = 0; e < geometry.numel; e += step) {
      const n = Math.min(step, geometry.numel - e)
      chunks.push({
        index: chunks.length,
        elementStart: e,
        elements: n,
        byteStart: bytesForElements(entry.dtype, e),
        byteLength: bytesForElements(entry.dtype, n),
        rowStart: 0,
        rows: 0,
      })
    }
  }
  return chunks
}
