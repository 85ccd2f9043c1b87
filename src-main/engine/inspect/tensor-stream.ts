// Streams tensors through the worker pool: a worker reads a chunk of raw bytes straight into shared kernel
// memory (one large read per chunk) and runs the requested reductions on it; this thread then merges the
// chunks' partial results in chunk order (so results do not depend on which worker finished first).
// Memory stays bounded by `slots` chunks whatever the tensors' sizes.
//
// Moments and channel statistics come from one fused kernel, scan_rows (kernels/assembly/scan.ts), which
// reads F32, F16 and BF16 bytes directly: no f32 copy of the chunk is made, and the chunk is read from
// memory about twice instead of five times. Other dtypes are decoded to f32 first and scanned as F32.
// streamTensors keeps its slots busy across tensor boundaries: the next tensor's reads start while the
// last chunks of the previous one are still computing.

import type { TensorEntry } from '../formats/types'
import { readTensorBytes, decodeToF32 } from '../formats/read'
import type { Region } from '../pool/memory-arena'
import type { KernelCall, WorkerPool } from '../pool/worker-pool'
import { MOMENTS_LENGTH, mergeMoments, emptyMoments } from '../../../kernels/reference/stats'
import { isScanDtype, SCAN_DTYPE } from '../../../kernels/reference/scan'
import { throwIfCancelled } from '../jobs/cancel'
import { wasmDecoder } from '../pool/wasm-decoders'
import { readThenRun } from '../pool/read-then-run'
import { chunkElementsFor, planChunks, tensorGeometry, type Chunk, type TensorGeometry } from './chunk-plan'

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

export interface StreamManyOptions {
  signal?: AbortSignal
  /** Called after each merged chunk with the tensor's index and its bytes done so far. */
  onBytes?: (tensor: number, done: number, total: number) => void
  slots?: number
  /** Elements per chunk (rounded to whole rows); by default about TARGET_CHUNK_BYTES of each tensor. */
  chunkElements?: number
}

/** One tensor's plan and running result. */
interface TensorJob {
  index: number
  entry: TensorEntry
  chunks: Chunk[]
  /** The effective request: channels and grid only where the tensor is a matrix. */
  req: StreamRequest
  /** Columns of the matrix view (0 when flat). */
  cols: number
  /** Whether chunks must be decoded to f32 in the slot (dtypes scan_rows cannot read, grid, histogram). */
  decode: boolean
  result: StreamResult
  bytesDone: number
  chunksDone: number
}

/** Byte offsets inside a slot, sized for the largest chunk of any tensor in the stream. */
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

function wantsScan(req: StreamRequest): boolean {
  return req.moments !== false || !!req.channels
}

function planJob(index: number, entry: TensorEntry, req: StreamRequest, chunkElements?: number): TensorJob {
  const geometry = tensorGeometry(entry)
  const matrix = geometry.matrix
  const effective: StreamRequest = {
    ...req,
    channels: !!req.channels && !!matrix,
    grid: req.grid && matrix ? req.grid : undefined,
  }
  const decode = !isScanDtype(entry.dtype) || !!effective.grid || !!effective.histogram
  const chunks = planChunks(entry, geometry, chunkElements ?? chunkElementsFor(entry))
  const result: StreamResult = { geometry, moments: emptyMoments() }
  if (effective.channels && matrix) {
    result.rowAbsmax = new Float32Array(matrix.rows)
    result.rowSumsq = new Float64Array(matrix.rows)
    result.colAbsmax = new Float32Array(matrix.cols)
    result.colSumsq = new Float64Array(matrix.cols)
  }
  if (effective.grid) result.grid = new Float32Array(effective.grid.rows * effective.grid.cols)
  if (effective.histogram) result.histogram = new Float64Array(effective.histogram.bins + 2)
  return { index, entry, chunks, req: effective, cols: matrix?.cols ?? 0, decode, result, bytesDone: 0, chunksDone: 0 }
}

function layoutSlot(jobs: TensorJob[]): SlotLayout {
  let rawBytes = 0
  let f32Elements = 0
  let rows = 0
  let cols = 0
  let gridCells = 0
  let histBins = 0
  for (const job of jobs) {
    for (const chunk of job.chunks) {
      rawBytes = Math.max(rawBytes, chunk.byteLength)
      if (job.decode && job.entry.dtype !== 'F32') f32Elements = Math.max(f32Elements, chunk.elements)
      rows = Math.max(rows, chunk.rows)
    }
    if (job.req.channels) cols = Math.max(cols, job.cols)
    if (job.req.grid) gridCells = Math.max(gridCells, job.req.grid.rows * job.req.grid.cols)
    if (job.req.histogram) histBins = Math.max(histBins, job.req.histogram.bins + 2)
  }
  let at = 0
  const take = (bytes: number): number => {
    const p = at
    at += Math.ceil(bytes / 64) * 64
    return p
  }
  const raw = take(rawBytes)
  const f32 = take(f32Elements * 4) // F32 needs no decode: the kernels read the raw bytes directly
  const moments = take(MOMENTS_LENGTH * 8)
  const rowAbs = take(rows * 4)
  const rowSq = take(rows * 8)
  const colAbs = take(cols * 4)
  const colSq = take(cols * 8)
  const grid = take(gridCells * 4)
  const hist = take(histBins * 4)
  return { raw, f32, moments, rowAbs, rowSq, colAbs, colSq, grid, hist, total: Math.max(at, 64) }
}

/**
 * Streams each of `entries` with the same request, in order, through one set of slots; `onResult` gets
 * each tensor's result, in order, as soon as its last chunk is merged.
 */
export async function streamTensors(
  pool: WorkerPool,
  entries: readonly TensorEntry[],
  req: StreamRequest,
  onResult: (index: number, result: StreamResult) => void,
  opts: StreamManyOptions = {},
): Promise<void> {
  const jobs = entries.map((entry, i) => planJob(i, entry, req, opts.chunkElements))
  const work: { job: TensorJob; chunk: Chunk }[] = []
  for (const job of jobs) for (const chunk of job.chunks) work.push({ job, chunk })
  const layout = layoutSlot(jobs)
  const slotCount = Math.max(1, Math.min(opts.slots ?? Math.max(2, pool.threads * 2), work.length))
  const arena = pool.arena
  const free: Region[] = []
  for (let i = 0; i < Math.min(slotCount, work.length); i++) free.push(arena.alloc(layout.total, 'a tensor chunk'))
  const allSlots = [...free]
  type Done = { slot: Region; job: TensorJob; chunk: Chunk }
  const pending: Promise<Done>[] = []
  let nextResult = 0

  /** Hands out, in order, every finished tensor not yet reported (tensors without chunks included). */
  const report = (): void => {
    while (nextResult < jobs.length && jobs[nextResult].chunksDone === jobs[nextResult].chunks.length) {
      onResult(nextResult, jobs[nextResult].result)
      nextResult++
    }
  }

  const runChunk = async (slot: Region, job: TensorJob, chunk: Chunk): Promise<Done> => {
    const { entry, req, cols } = job
    const calls: KernelCall[] = []
    const rawPtr = slot.ptr + layout.raw
    let f32Ptr = rawPtr
    // The worker reads the chunk itself (pool/read-then-run.ts), unless this thread must decode it first.
    let readHere = false
    if (job.decode && entry.dtype !== 'F32') {
      f32Ptr = slot.ptr + layout.f32
      const decoder = wasmDecoder(entry.dtype)
      if (decoder) calls.push([decoder.kernel, rawPtr, f32Ptr, chunk.elements / decoder.perUnit])
      else {
        readHere = true
        const raw = arena.u8(slot, layout.raw, chunk.byteLength)
        await readTensorBytes(entry, chunk.byteStart, chunk.byteLength, raw)
        decodeToF32(entry.dtype, raw, chunk.elements, arena.f32(slot, layout.f32, chunk.elements))
      }
    }
    if (wantsScan(req)) {
      // Read the file's bytes where the kernel can, else the decoded f32.
      const direct = isScanDtype(entry.dtype)
      const [rows, rowLength] = req.channels ? [chunk.rows, cols] : [1, chunk.elements]
      if (req.channels) {
        arena.f32(slot, layout.colAbs, cols).fill(0)
        arena.f64(slot, layout.colSq, cols).fill(0)
      }
      calls.push([
        'scan_rows',
        direct ? rawPtr : f32Ptr,
        direct ? SCAN_DTYPE[entry.dtype as keyof typeof SCAN_DTYPE] : SCAN_DTYPE.F32,
        rows,
        rowLength,
        req.channels ? 1 : 0,
        slot.ptr + layout.moments,
        slot.ptr + layout.rowAbs,
        slot.ptr + layout.rowSq,
        slot.ptr + layout.colAbs,
        slot.ptr + layout.colSq,
      ])
    }
    const grid = req.grid
    if (grid) {
      arena.f32(slot, layout.grid, grid.rows * grid.cols).fill(0)
      calls.push([
        'pool_absmax',
        f32Ptr,
        chunk.rows,
        cols,
        chunk.rowStart,
        job.result.geometry.matrix!.rows,
        grid.rows,
        grid.cols,
        slot.ptr + layout.grid,
      ])
    }
    const histogram = req.histogram
    if (histogram) {
      arena.u32(slot, layout.hist, histogram.bins + 2).fill(0)
      calls.push([
        'histogram',
        f32Ptr,
        chunk.elements,
        histogram.lo,
        histogram.hi,
        histogram.bins,
        slot.ptr + layout.hist,
      ])
    }
    if (readHere) {
      if (calls.length > 0) await pool.run(calls)
    } else await readThenRun(pool, entry, chunk.byteStart, chunk.byteLength, rawPtr, calls)
    return { slot, job, chunk }
  }

  const merge = ({ slot, job, chunk }: Done): void => {
    const { req, result, cols } = job
    if (req.moments !== false)
      result.moments = mergeMoments(result.moments, arena.f64(slot, layout.moments, MOMENTS_LENGTH))
    if (req.channels && result.rowAbsmax && result.rowSumsq && result.colAbsmax && result.colSumsq) {
      result.rowAbsmax.set(arena.f32(slot, layout.rowAbs, chunk.rows), chunk.rowStart)
      result.rowSumsq.set(arena.f64(slot, layout.rowSq, chunk.rows), chunk.rowStart)
      const ca = arena.f32(slot, layout.colAbs, cols)
      const cs = arena.f64(slot, layout.colSq, cols)
      for (let c = 0; c < cols; c++) {
        if (ca[c] > result.colAbsmax[c]) result.colAbsmax[c] = ca[c]
        result.colSumsq[c] += cs[c]
      }
    }
    if (req.grid && result.grid) {
      const g = arena.f32(slot, layout.grid, result.grid.length)
      for (let i = 0; i < g.length; i++) if (g[i] > result.grid[i]) result.grid[i] = g[i]
    }
    if (req.histogram && result.histogram) {
      const h = arena.u32(slot, layout.hist, req.histogram.bins + 2)
      for (let i = 0; i < h.length; i++) result.histogram[i] += h[i]
    }
    job.bytesDone += chunk.byteLength
    job.chunksDone++
    opts.onBytes?.(job.index, job.bytesDone, job.entry.byteLength)
  }

  try {
    report()
    for (const { job, chunk } of work) {
      if (pending.length >= slotCount) {
        const done = await pending.shift()!
        merge(done)
        free.push(done.slot)
        report()
      }
      throwIfCancelled(opts.signal)
      const task = runChunk(free.pop()!, job, chunk)
      task.catch(() => {}) // observed when awaited in order; this only keeps Node from calling it unhandled
      pending.push(task)
    }
    while (pending.length > 0) {
      merge(await pending.shift()!)
      report()
    }
    report()
  } finally {
    // Never free a slot a worker may still be writing to.
    await Promise.allSettled(pending)
    for (const s of allSlots) arena.release(s)
  }
}

/** Streams one tensor; see streamTensors. */
export async function streamTensor(
  pool: WorkerPool,
  entry: TensorEntry,
  req: StreamRequest,
  opts: StreamOptions = {},
): Promise<StreamResult> {
  let result: StreamResult | undefined
  await streamTensors(
    pool,
    [entry],
    req,
    (_, r) => {
      result = r
    },
    {
      signal: opts.signal,
      slots: opts.slots,
      onBytes: opts.onBytes && ((_, done, total) => opts.onBytes!(done, total)),
    },
  )
  return result!
}
