// GGUF quantization across the worker pool: the same kernels as quantize-tensor.ts's quantizeTensorGguf,
// with each chunk of rows split into one slice per worker. GGUF blocks never span rows and every kernel
// quantizes a row from that row's values alone (and the per-column importances), so where a row is cut
// does not change a byte: the output is identical to the single-threaded quantizer's, whatever the
// number of workers (held to that in quantize-tensor-parallel.test.ts).
// Each worker also decodes its slice back in place, so the caller learns whether the stored values are
// exactly the weights without a second pass; the dequantized values are compared in kernel memory and
// never copied out.

import { WhittleError } from '../../errors'
import type { TensorEntry } from '../../formats/types'
import { loadTensor } from '../../pool/arena-tensors'
import type { WorkerPool, KernelCall } from '../../pool/worker-pool'
import type { Region } from '../../pool/memory-arena'
import { QUANT_SCRATCH_BYTES, type KernelName } from '../../../../kernels/host/exports'
import {
  checkQuantizeInput,
  compatibleGgufType,
  ggufKernels,
  ggufRowBytes,
  type GgufStorageType,
  type QuantizeTensorOptions,
} from './quantize-tensor'

export interface GgufEncoded {
  /** rows * (bytes per row), rows back to back, as GGUF stores the tensor's data. */
  bytes: Uint8Array
  /** The type `bytes` is in (the requested one, or its fallback). */
  type: GgufStorageType
  fallback?: string
  /** The stored values decode to exactly the input weights. */
  exact: boolean
}

/** Elements per worker per pass: bounds the arena use to about threads x 2 x 4 x this many bytes. */
const SLICE_ELEMENTS = 1 << 21

/** Whether two f32 arrays hold the same bit patterns. */
export function sameBits(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length)
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length)
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false
  return true
}

/** Where a block of `rows` rows sits in kernel memory, and how it is quantized. */
export interface RowBlockLayout {
  rows: number
  cols: number
  /** f32 values [rows, cols]. */
  values: number
  /** Encoded rows, rowBytes each. */
  packed: number
  rowBytes: number
  /** QUANT_SCRATCH_BYTES per worker. */
  scratch: number
  blockElements: number
  quantize: KernelName
  /** The imatrix kernel and its per-column importances, when weighted. */
  weighted: { kernel: KernelName; importance: number } | null
}

/** One worker's slice of a row block: its first row, row count, f32 source, encoded destination, blocks. */
export interface RowSlice {
  first: number
  count: number
  src: number
  dst: number
  units: number
  /** The slice's own QUANT_SCRATCH_BYTES of scratch memory. */
  scratch: number
  /** The call that quantizes the slice. */
  quantize: KernelCall
}

/**
 * The call that quantizes `count` rows whose f32 values are at `src` into `dst` (their first encoded
 * row), with `scratch` as the kernel's scratch memory.
 */
export function quantizeRowsCall(
  layout: RowBlockLayout,
  src: number,
  dst: number,
  count: number,
  scratch: number,
): KernelCall {
  const w = layout.weighted
  return w
    ? [w.kernel, src, dst, count, layout.cols, w.importance, scratch]
    : [layout.quantize, src, dst, (count * layout.cols) / layout.blockElements, scratch]
}

/** Even slices of a row block, one per worker, so each gets about the same work. */
export function rowSlices(layout: RowBlockLayout, workers: number): RowSlice[] {
  const { rows, cols } = layout
  const per = Math.ceil(rows / Math.max(1, Math.min(workers, rows)))
  const slices: RowSlice[] = []
  for (let first = 0, i = 0; first < rows; first += per, i++) {
    const count = Math.min(per, rows - first)
    const src = layout.values + first * cols * 4
    const dst = layout.packed + first * layout.rowBytes
    const units = (count * cols) / layout.blockElements
    const scratch = layout.scratch + i * QUANT_SCRATCH_BYTES
    slices.push({
      first,
      count,
      src,
      dst,
      units,
      scratch,
      quantize: quantizeRowsCall(layout, src, dst, count, scratch),
    })
  }
  return slices
}

/**
 * Quantizes W [rows, cols] (row-major f32) to `type` (or its fallback) on the pool's workers, row-parallel:
 * byte-identical to quantizeTensorGguf.
 */
export async function quantizeTensorGgufParallel(
  pool: WorkerPool,
  w: Float32Array,
  rows: number,
  cols: number,
  type: GgufStorageType,
  options: Pick<QuantizeTensorOptions, 'importance'> = {},
): Promise<GgufEncoded> {
  const { choice, importance } = checkQuantizeInput(w, rows, cols, type, options.importance ?? null)
  const kernels = ggufKernels(choice.type)
  const rowBytes = ggufRowBytes(choice.type, cols)
  const bytes = new Uint8Array(rows * rowBytes)
  const head = { type: choice.type, ...(choice.fallback ? { fallback: choice.fallback } : {}) }
  if (rows === 0) return { bytes, ...head, exact: true }
  if (!kernels.quantize || !kernels.decode) {
    // F32: stored as is.
    bytes.set(new Uint8Array(w.buffer, w.byteOffset, w.byteLength))
    return { bytes, ...head, exact: true }
  }
  const quantize = kernels.quantize
  const decode = kernels.decode
  const weighted = importance ? kernels.weighted : null

  const workers = Math.max(1, pool.threads)
  const sliceRows = Math.max(1, Math.floor(SLICE_ELEMENTS / cols))
  const chunkRows = Math.min(rows, sliceRows * workers)
  const regions: Region[] = []
  let exact = true
  try {
    // The f32 region takes the weights in and, once they are quantized, the dequantized values back out.
    const values = pool.arena.alloc(chunkRows * cols * 4)
    regions.push(values)
    const packed = pool.arena.alloc(chunkRows * rowBytes)
    regions.push(packed)
    // Some quantizers (the K-quants, IQ4_XS, the imatrix ones) overwrite scratch memory: one per worker.
    const scratch = pool.arena.alloc(QUANT_SCRATCH_BYTES * workers, 'quantizer scratch')
    regions.push(scratch)
    const qw = weighted ? pool.arena.alloc(cols * 4, 'importance row') : null
    if (qw) {
      regions.push(qw)
      pool.arena.f32(qw, 0, cols).set(importance!)
    }
    for (let r0 = 0; r0 < rows; r0 += chunkRows) {
      const n = Math.min(chunkRows, rows - r0)
      // Views are made after every allocation (memory.grow replaces the buffer), never kept across one.
      pool.arena.f32(values, 0, n * cols).set(w.subarray(r0 * cols, (r0 + n) * cols))
      const slices = rowSlices(
        {
          rows: n,
          cols,
          values: values.ptr,
          packed: packed.ptr,
          rowBytes,
          scratch: scratch.ptr,
          blockElements: kernels.blockElements,
          quantize,
          weighted: weighted ? { kernel: weighted, importance: qw!.ptr } : null,
        },
        workers,
      )
      await Promise.all(slices.map((s) => pool.run([s.quantize, [decode, s.dst, s.src, s.units]])))
      bytes.set(pool.arena.u8(packed, 0, n * rowBytes), r0 * rowBytes)
      if (exact) exact = sameBits(pool.arena.f32(values, 0, n * cols), w.subarray(r0 * cols, (r0 + n) * cols))
    }
  } finally {
    for (const region of regions) pool.arena.release(region)
  }
  return { bytes, ...head, exact }
}

/** Source elements decoded per block by quantizeEntryGgufParallel. */
const STREAM_ELEMENTS = 1 << 23

/**
 * Quantizes a 2-D tensor straight from its file (or held data), a block of rows at a time: each block is
 * read in one large read and decoded in kernel memory, then quantized as quantizeTensorGgufParallel does.
 * Memory holds one block of f32 values and the tensor's encoded bytes, never the whole tensor as f32,
 * so the embedding and output matrices stream like every other tensor. The bytes are the same as
 * quantizing the whole tensor at once: rows are quantized independently.
 */
export async function quantizeEntryGgufParallel(
  pool: WorkerPool,
  entry: TensorEntry,
  type: GgufStorageType,
  options: Pick<QuantizeTensorOptions, 'importance'> & {
    /** Source elements per block (whole rows, at least one). Default 8M. */
    streamElements?: number
  } = {},
): Promise<GgufEncoded> {
  const [rows, cols] = entry.shape
  if (entry.shape.length !== 2)
    throw new WhittleError('validation', entry.file, `tensor "${entry.name}" is not a matrix: it cannot be streamed`)
  const choice = compatibleGgufType(type, cols)
  const rowBytes = ggufRowBytes(choice.type, cols)
  const bytes = new Uint8Array(rows * rowBytes)
  const blockRows = Math.max(1, Math.floor((options.streamElements ?? STREAM_ELEMENTS) / cols))
  const quantizeOptions = { importance: options.importance ?? null }
  let exact = true
  for (let r0 = 0; r0 < rows; r0 += blockRows) {
    const n = Math.min(blockRows, rows - r0)
    const block = await loadTensor(pool, entry, r0, n)
    let values: Float32Array
    try {
      // Copied out: the quantizer's own allocations may grow (and so replace) the kernel memory's buffer.
      values = block.view().slice()
    } finally {
      block.free()
    }
    const q = await quantizeTensorGgufParallel(pool, values, n, cols, type, quantizeOptions)
    bytes.set(q.bytes, r0 * rowBytes)
    exact &&= q.exact
  }
  return { bytes, type: choice.type, ...(choice.fallback ? { fallback: choice.fallback } : {}), exact }
}
