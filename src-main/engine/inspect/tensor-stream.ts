// Streams one tensor through the worker pool: read a chunk of raw bytes straight into shared kernel
// memory, decode it to f32 and run the requested reductions on a worker, then merge the chunk's partial
// results on this thread in chunk order (so results do not depend on which worker finished first).
// Memory stays bounded by `slots` chunks whatever the tensor's size.

import type { TensorEntry } from '../formats/types'
import { readTensorBytes, decodeToF32 } from '../formats/read'
import type { Region } from '../pool/memory-arena'
import type { KernelCall, WorkerPool } from '../pool/worker-pool'
import { MOMENTS_LENGTH, mergeMoments, emptyMoments } from '../../../kernels/reference/stats'
import { throwIfCancelled } from '../jobs/cancel'
import { wasmDecoder } from '../pool/wasm-decoders'
import { planChunks, tensorGeometry, type Chunk, type TensorGeometry } from './chunk-plan'

export interface StreamRequest {
  moments?: boolean
  /** Per-row and per-column absmax and sum of squares (matrix tensors only). */
  channels?: boolean
  /** Max-pooled |w| grid (matrix tensors only). */
  grid?: { rows: number; cols: number }
  /** Histogram over [lo, hi]. */
  histogram?: { lo: number; hi: number; bins: number }
}

export interface StreamResult {
  geometry: TensorGeometry
  moments: Float64Array
  rowAbsmax?: Float32Array
  rowSumsq?: Float64Array
  colAbsmax?: Float32Array
  colSumsq?: Float64Array
  grid?: Float32Array
  /** bins + 2 entries: the last two are below/above the range. */
  histogram?: Float64Array
}

export interface StreamOptions {
  signal?: AbortSignal
  /** Called after each merged chunk with the bytes of the tensor done so far. */
  onBytes?: (done: number, total: number) => void
  slots?: number
}

interface SlotLayout {
  raw: number
  f32: number
  moments: number
  rowAbs: number
  rowSq: number
  colAbs: number
  colSq: number
  grid: number
  hist: number
  total: number
}

function layoutSlot(
  entry: TensorEntry,
  chunkElements: number,
  chunkRows: number,
  cols: number,
  req: StreamRequest,
): SlotLayout {
  let at = 0
  const take = (bytes: number): number => {
    const p = at
    at += Math.ceil(bytes / 64) * 64
    return p
  }
  const rawBytes = Math.ceil(chunkBytesUpperBound(entry, chunkElements))
  const raw = take(rawBytes)
  // F32 needs no decode: the kernels read the raw bytes directly.
  const f32 = entry.dtype === 'F32' ? raw : take(chunkElements * 4)
  const moments = take(MOMENTS_LENGTH * 8)
  const rowAbs = req.channels ? take(chunkRows * 4) : 0
  const rowSq = req.channels ? take(chunkRows * 8) : 0
  const colAbs = req.channels ? take(cols * 4) : 0
  const colSq = req.channels ? take(cols * 8) : 0
  const grid = req.grid ? take(req.grid.rows * req.grid.cols * 4) : 0
  const hist = req.histogram ? take((req.histogram.bins + 2) * 4) : 0
  return { raw, f32, moments, rowAbs, rowSq, colAbs, colSq, grid, hist, total: Math.max(at, 64) }
}

function chunkBytesUpperBound(entry: TensorEntry, elements: number): number {
  const numel = entry.shape.reduce((a, b) => a * b, 1)
  return numel === 0 ? 0 : (entry.byteLength / numel) * elements
}

export async function streamTensor(
  pool: WorkerPool,
  entry: TensorEntry,
  req: StreamRequest,
  opts: StreamOptions = {},
): Promise<StreamResult> {
  const geometry = tensorGeometry(entry)
  const matrix = geometry.matrix
  const wantChannels = !!req.channels && !!matrix
  const wantGrid = req.grid && matrix ? req.grid : undefined
  const effective: StreamRequest = { ...req, channels: wantChannels, grid: wantGrid }
  const chunks = planChunks(entry, geometry)
  const result: StreamResult = { geometry, moments: emptyMoments() }
  if (chunks.length === 0) return result

  const maxElements = Math.max(...chunks.map((c) => c.elements))
  const maxRows = Math.max(1, ...chunks.map((c) => c.rows))
  const cols = matrix?.cols ?? 0
  const layout = layoutSlot(entry, maxElements, maxRows, cols, effective)
  if (wantChannels && matrix) {
    result.rowAbsmax = new Float32Array(matrix.rows)
    result.rowSumsq = new Float64Array(matrix.rows)
    result.colAbsmax = new Float32Array(cols)
    result.colSumsq = new Float64Array(cols)
  }
  if (wantGrid) result.grid = new Float32Array(wantGrid.rows * wantGrid.cols)
  if (req.histogram) result.histogram = new Float64Array(req.histogram.bins + 2)

  const slotCount = Math.max(1, Math.min(opts.slots ?? Math.max(2, pool.threads * 2), chunks.length))
  const arena = pool.arena
  const free: Region[] = []
  for (let i = 0; i < slotCount; i++) free.push(arena.alloc(layout.total))
  const allSlots = [...free]
  const pending: Promise<{ slot: Region; chunk: Chunk }>[] = []
  let bytesDone = 0

  const runChunk = async (slot: Region, chunk: Chunk): Promise<{ slot: Region; chunk: Chunk }> => {
    const raw = arena.u8(slot, layout.raw, chunk.byteLength)
    await readTensorBytes(entry, chunk.byteStart, chunk.byteLength, raw)
    const calls: KernelCall[] = []
    const f32Ptr = slot.ptr + layout.f32
    const decoder = wasmDecoder(entry.dtype)
    if (entry.dtype !== 'F32') {
      if (decoder) calls.push([decoder.kernel, slot.ptr + layout.raw, f32Ptr, chunk.elements / decoder.perUnit])
      else
        decodeToF32(
          entry.dtype,
          arena.u8(slot, layout.raw, chunk.byteLength),
          chunk.elements,
          arena.f32(slot, layout.f32, chunk.elements),
        )
    }
    if (effective.moments !== false) calls.push(['moments', f32Ptr, chunk.elements, slot.ptr + layout.moments])
    if (wantChannels && matrix) {
      arena.f32(slot, layout.colAbs, cols).fill(0)
      arena.f64(slot, layout.colSq, cols).fill(0)
      calls.push(['row_absmax_sumsq', f32Ptr, chunk.rows, cols, slot.ptr + layout.rowAbs, slot.ptr + layout.rowSq])
      calls.push(['col_absmax_sumsq', f32Ptr, chunk.rows, cols, slot.ptr + layout.colAbs, slot.ptr + layout.colSq])
    }
    if (wantGrid && matrix) {
      arena.f32(slot, layout.grid, wantGrid.rows * wantGrid.cols).fill(0)
      calls.push([
        'pool_absmax',
        f32Ptr,
        chunk.rows,
        cols,
        chunk.rowStart,
        matrix.rows,
        wantGrid.rows,
        wantGrid.cols,
        slot.ptr + layout.grid,
      ])
    }
    if (req.histogram) {
      arena.u32(slot, layout.hist, req.histogram.bins + 2).fill(0)
      calls.push([
        'histogram',
        f32Ptr,
        chunk.elements,
        req.histogram.lo,
        req.histogram.hi,
        req.histogram.bins,
        slot.ptr + layout.hist,
      ])
    }
    await pool.run(calls)
    return { slot, chunk }
  }

  const merge = ({ slot, chunk }: { slot: Region; chunk: Chunk }): void => {
    if (effective.moments !== false)
      result.moments = mergeMoments(result.moments, arena.f64(slot, layout.moments, MOMENTS_LENGTH))
    if (wantChannels && result.rowAbsmax && result.rowSumsq && result.colAbsmax && result.colSumsq) {
      result.rowAbsmax.set(arena.f32(slot, layout.rowAbs, chunk.rows), chunk.rowStart)
      result.rowSumsq.set(arena.f64(slot, layout.rowSq, chunk.rows), chunk.rowStart)
      const ca = arena.f32(slot, layout.colAbs, cols)
      const cs = arena.f64(slot, layout.colSq, cols)
      for (let c = 0; c < cols; c++) {
        if (ca[c] > result.colAbsmax[c]) result.colAbsmax[c] = ca[c]
        result.colSumsq[c] += cs[c]
      }
    }
    if (wantGrid && result.grid) {
      const g = arena.f32(slot, layout.grid, result.grid.length)
      for (let i = 0; i < g.length; i++) if (g[i] > result.grid[i]) result.grid[i] = g[i]
    }
    if (req.histogram && result.histogram) {
      const h = arena.u32(slot, layout.hist, req.histogram.bins + 2)
      for (let i = 0; i < h.length; i++) result.histogram[i] += h[i]
    }
    bytesDone += chunk.byteLength
    opts.onBytes?.(bytesDone, entry.byteLength)
  }

  try {
    for (const chunk of chunks) {
      if (pending.length >= slotCount) {
        const done = await pending.shift()!
        merge(done)
        free.push(done.slot)
      }
      throwIfCancelled(opts.signal)
      const task = runChunk(free.pop()!, chunk)
      task.catch(() => {}) // observed when awaited in order; this only keeps Node from calling it unhandled
      pending.push(task)
    }
    while (pending.length > 0) merge(await pending.shift()!)
    return result
  } finally {
    // Never free a slot a worker may still be writing to.
    await Promise.allSettled(pending)
    for (const s of allSlots) arena.release(s)
  }
}
