// The export's common paths as blocks of rows for the block pipeline (block-pipeline.ts):
// - a tensor already in its stored type (F16 -> F16) moves its bytes, with the q/k rows permuted, and is
//   never decoded; the bytes pass through kernel memory so that the CRC threads can hash them there;
// - a 2-D tensor to quantize is read a block of rows at a time straight into kernel memory, decoded and
//   quantized there row-parallel across the workers (each worker decodes its own slice).
// Each block comes with its CRC-32, hashed off the main thread (worker-crc.ts), and its bytes stay
// in kernel memory until the writer has copied them (EncodedBlock.release): the main thread hashes
// nothing and copies each byte once, into the writer's buffer.
// GGUF blocks never span rows and every quantizer encodes a row from that row's values (and the
// per-column importances) alone, so cutting a tensor into blocks of rows, and each block into one slice
// per worker, changes no byte: the output is quantizeTensorGguf's (held to that by the golden tests).

import { WhittleError } from '../../errors'
import { readTensorBytes } from '../../formats/read'
import type { TensorEntry } from '../../formats/types'
import { loadTensor } from '../../pool/arena-tensors'
import type { Region } from '../../pool/memory-arena'
import type { KernelCall, WorkerPool } from '../../pool/worker-pool'
import { QUANT_SCRATCH_BYTES, type KernelName } from '../../../../kernels/host/exports'
import {
  checkQuantizeInput,
  ggufKernels,
  ggufRowBytes,
  type GgufStorageType,
} from '../../compress/gguf-types/quantize-tensor'
import { wasmDecoder } from '../../pool/wasm-decoders'
import {
  quantizeRowsCall,
  rowSlices,
  sameBits,
  type RowSlice,
} from '../../compress/gguf-types/quantize-tensor-parallel'
import { readThenRun } from '../../pool/read-then-run'
import type { BlockJob, EncodedBlock } from './block-pipeline'
import type { CrcThreads } from './crc-threads'
import { hashKernelMemory } from './worker-crc'

/** Source elements per block: a few MB of encoded bytes each, so the pipeline's buffers stay small. */
export const BLOCK_ELEMENTS = 1 << 22

/** Whether the stored values of the blocks quantized so far decode exactly to their weights. */
export interface Exactness {
  exact: boolean
}

/** Rows per block for a tensor of `cols` columns; a multiple of `rowMultiple` where that fits. */
function blockRows(cols: number, rowMultiple: number, blockElements: number): number {
  const rows = Math.max(1, Math.floor(blockElements / Math.max(1, cols)))
  return rows >= rowMultiple ? rows - (rows % rowMultiple) : rowMultiple
}

/**
 * Jobs that move a tensor's bytes as they are (same encoding as the source), output row r taken from
 * source row `sources[r]` when rows are permuted. Blocks are whole heads, so a block's source rows are
 * the block's own rows, read in one read.
 */
export function copyJobs(
  pool: WorkerPool,
  crc: CrcThreads,
  entry: TensorEntry,
  rows: number,
  sources: Int32Array | null,
  heads: number,
  blockElements: number = BLOCK_ELEMENTS,
): BlockJob[] {
  if (rows === 0) return []
  const rowBytes = entry.byteLength / rows
  const cols = entry.shape.length === 0 ? 1 : entry.shape[entry.shape.length - 1]
  const n = blockRows(cols, sources && heads > 0 ? rows / heads : 1, blockElements)
  const jobs: BlockJob[] = []
  for (let r0 = 0; r0 < rows; r0 += n) {
    const count = Math.min(n, rows - r0)
    const bytes = count * rowBytes
    jobs.push({ bytes, run: () => copyBlock(pool, crc, entry, rowBytes, r0, count, sources) })
  }
  return jobs
}

/**
 * Jobs that quantize a 2-D tensor [rows, cols] from its file (or held data) to `type` (or its fallback,
 * compatibleGgufType's), each a block of rows: read and decoded into kernel memory, quantized on the
 * workers (one slice each), and, while every value so far is exact, decoded back to compare.
 */
export function quantizeJobs(
  pool: WorkerPool,
  crc: CrcThreads,
  entry: TensorEntry,
  type: GgufStorageType,
  importance: Float32Array | null,
  exactness: Exactness,
  blockElements: number = BLOCK_ELEMENTS,
  permutation: RowPermutation | null = null,
): BlockJob[] {
  if (entry.shape.length !== 2)
    throw new WhittleError('validation', entry.file, `tensor "${entry.name}" is not a matrix: it cannot be streamed`)
  const [rows, cols] = entry.shape
  if (permutation && !canPermuteInBlocks(entry))
    throw new WhittleError(
      'unsupported',
      entry.file,
      `tensor "${entry.name}": ${entry.dtype} rows cannot be permuted in blocks`,
    )
  // Checks the type against the row and the importances against the columns (no weights yet: 0 rows).
  const { choice } = checkQuantizeInput(new Float32Array(0), 0, cols, type, importance)
  const rowBytes = ggufRowBytes(choice.type, cols)
  const n = blockRows(cols, permutation ? rows / permutation.heads : 1, blockElements)
  const jobs: BlockJob[] = []
  for (let r0 = 0; r0 < rows; r0 += n) {
    const count = Math.min(n, rows - r0)
    const sources = permutation?.sources ?? null
    jobs.push({
      bytes: count * rowBytes,
      run: () => quantizeBlock(pool, crc, entry, r0, count, choice.type, importance, exactness, sources),
    })
  }
  return jobs
}

/** q/k rows in llama.cpp's order: output row r is source row `sources[r]`, within its head. */
export interface RowPermutation {
  sources: Int32Array
  heads: number
}

/** Whether quantizeJobs can permute this tensor's rows block by block (its raw rows decode on the workers). */
export function canPermuteInBlocks(entry: TensorEntry): boolean {
  const decoder = wasmDecoder(entry.dtype)
  const cols = entry.shape[entry.shape.length - 1]
  return entry.dtype !== 'F32' && !!decoder && cols % decoder.perUnit === 0 && !entry.unpack
}

/** The lowest and highest source row of output rows [r0, r0 + count). */
function sourceRange(sources: Int32Array, r0: number, count: number): [number, number] {
  let lo = Infinity
  let hi = -Infinity
  for (let r = r0; r < r0 + count; r++) {
    lo = Math.min(lo, sources[r])
    hi = Math.max(hi, sources[r])
  }
  return [lo, hi]
}

/**
 * Reads source rows for output rows [r0, r0 + count) into `target()`, in output order. The target is a
 * view of kernel memory asked for only after this function's own allocation (memory.grow replaces the
 * buffer, so a view is never kept across an allocation).
 */
async function readRows(
  pool: WorkerPool,
  entry: TensorEntry,
  rowBytes: number,
  r0: number,
  count: number,
  sources: Int32Array | null,
  target: () => Uint8Array,
): Promise<void> {
  if (!sources) {
    await readTensorBytes(entry, r0 * rowBytes, count * rowBytes, target())
    return
  }
  const [lo, hi] = sourceRange(sources, r0, count)
  // The source rows, staged in kernel memory (already resident, reused), then gathered in order.
  const staging = pool.arena.alloc((hi - lo + 1) * rowBytes, 'permuted rows')
  try {
    const into = target()
    const from = await readTensorBytes(
      entry,
      lo * rowBytes,
      (hi - lo + 1) * rowBytes,
      pool.arena.u8(staging, 0, (hi - lo + 1) * rowBytes),
    )
    for (let r = 0; r < count; r++) {
      const s = sources[r0 + r] - lo
      into.set(from.subarray(s * rowBytes, (s + 1) * rowBytes), r * rowBytes)
    }
  } finally {
    pool.arena.release(staging)
  }
}

/**
 * `region`'s first `bytes` bytes as a block that holds the region until released. The view stays valid
 * while other blocks allocate: growing a shared memory never detaches its buffer, it only adds a longer one.
 */
function heldBlock(pool: WorkerPool, region: Region, bytes: number, crc: number): EncodedBlock {
  return { bytes: pool.arena.u8(region, 0, bytes), crc, release: () => pool.arena.release(region) }
}

/**
 * Output rows [r0, r0 + count) of a copied tensor with their CRC-32: read into kernel memory (source rows
 * gathered into output order there) and hashed on the CRC threads.
 */
async function copyBlock(
  pool: WorkerPool,
  crc: CrcThreads,
  entry: TensorEntry,
  rowBytes: number,
  r0: number,
  count: number,
  sources: Int32Array | null,
): Promise<EncodedBlock> {
  const bytes = count * rowBytes
  const staged = pool.arena.alloc(bytes, 'copied rows')
  try {
    await readRows(pool, entry, rowBytes, r0, count, sources, () => pool.arena.u8(staged, 0, bytes))
    return heldBlock(pool, staged, bytes, await hashKernelMemory(crc, staged.ptr, bytes))
  } catch (e) {
    pool.arena.release(staged)
    throw e
  }
}

/**
 * Clears `exactness.exact` unless the quantized block decodes to exactly its values. The block's first
 * row is decoded first: for weights that were not already quantized to this type it differs (and one
 * row is all that is decoded); only when it matches are the other rows decoded, each worker its slice.
 */
async function checkExact(
  pool: WorkerPool,
  decode: KernelName,
  slices: readonly RowSlice[],
  cols: number,
  values: Region,
  decoded: Region,
  exactness: Exactness,
): Promise<void> {
  const first = slices[0]
  const rowUnits = first.units / first.count
  await pool.run([[decode, first.dst, decoded.ptr, rowUnits]])
  if (!sameBits(pool.arena.f32(decoded, 0, cols), pool.arena.f32(values, 0, cols))) {
    exactness.exact = false
    return
  }
  await Promise.all(slices.map((s) => pool.run([[decode, s.dst, decoded.ptr + s.first * cols * 4, s.units]])))
  const rows = slices.reduce((n, s) => n + s.count, 0)
  exactness.exact = sameBits(pool.arena.f32(decoded, 0, rows * cols), pool.arena.f32(values, 0, rows * cols))
}

/**
 * Rows per decode-and-quantize run: the decoder writes a run's f32 values (about 256 KiB) and the
 * quantizer reads them back while they are still in the core's L2, instead of a whole slice's megabytes
 * going out to memory and back.
 */
const RUN_VALUES = 1 << 16

async function quantizeBlock(
  pool: WorkerPool,
  crc: CrcThreads,
  entry: TensorEntry,
  r0: number,
  rows: number,
  type: GgufStorageType,
  importance: Float32Array | null,
  exactness: Exactness,
  sources: Int32Array | null,
): Promise<EncodedBlock> {
  const cols = entry.shape[1]
  const kernels = ggufKernels(type)
  const rowBytes = ggufRowBytes(type, cols)
  const bytes = rows * rowBytes
  const regions: Region[] = []
  const alloc = (size: number, what: string): Region => {
    const region = pool.arena.alloc(size, what)
    regions.push(region)
    return region
  }
  // The hash of the quantized rows while it runs: their memory is released only once it has settled.
  let hash: Promise<number> | null = null
  try {
    // The source rows go into kernel memory as they are and each worker decodes its own slice to f32
    // before quantizing it. Unpermuted rows are read by the workers themselves, each its slice
    // (pool/read-then-run.ts), so the main thread neither reads nor decodes. A dtype without a WASM
    // decoder for whole rows is decoded on this thread (loadTensor).
    const decoder = entry.dtype === 'F32' ? undefined : wasmDecoder(entry.dtype)
    const sourceRowBytes = entry.byteLength / entry.shape[0]
    const decodesOnWorkers = !!decoder && cols % decoder.perUnit === 0
    if (!kernels.quantize || !kernels.decode) {
      // F32: stored as is (decoded from the source's rows, in output order).
      let values: Region
      if (decodesOnWorkers) {
        const raw = alloc(rows * sourceRowBytes, 'source rows')
        values = alloc(rows * cols * 4, 'weights')
        await readRows(pool, entry, sourceRowBytes, r0, rows, sources, () =>
          pool.arena.u8(raw, 0, rows * sourceRowBytes),
        )
        await pool.run([[decoder.kernel, raw.ptr, values.ptr, (rows * cols) / decoder.perUnit]])
      } else {
        values = (await loadTensor(pool, entry, r0, rows)).region
        regions.push(values)
      }
      const valuesCrc = await hashKernelMemory(crc, values.ptr, bytes)
      regions.splice(regions.indexOf(values), 1)
      return heldBlock(pool, values, bytes, valuesCrc)
    }
    const workers = Math.max(1, pool.threads)
    const packed = alloc(bytes, 'quantized rows')
    // Some quantizers (the K-quants, IQ4_XS, the imatrix ones) overwrite scratch memory: one per worker.
    const scratch = alloc(QUANT_SCRATCH_BYTES * workers, 'quantizer scratch')
    const weighted = importance ? kernels.weighted : null
    const qw = weighted ? alloc(cols * 4, 'importance row') : null
    if (qw) pool.arena.f32(qw, 0, cols).set(importance!)
    // While every value so far is exact, the check compares the whole block's values, so they are kept;
    // afterwards each worker decodes into a run-sized buffer of its own.
    const check = exactness.exact
    const runRows = Math.max(1, Math.floor(RUN_VALUES / cols))
    // How the rows reach the workers: raw rows they decode (read by each worker, or gathered here when
    // q/k rows are permuted), f32 rows each worker reads as they are, or rows decoded here (loadTensor;
    // quantizeJobs permutes rows only where a worker decodes them).
    const path = decodesOnWorkers ? 'decode' : entry.dtype === 'F32' && !sources ? 'f32' : 'here'
    const raw = path === 'decode' ? alloc(rows * sourceRowBytes, 'source rows') : null
    let values: Region
    if (path === 'here') {
      values = (await loadTensor(pool, entry, r0, rows)).region
      regions.push(values)
    } else if (path === 'decode' && !check) values = alloc(workers * runRows * cols * 4, 'weights, a run per worker')
    else values = alloc(rows * cols * 4, 'weights')
    if (raw && sources) {
      await readRows(pool, entry, sourceRowBytes, r0, rows, sources, () => pool.arena.u8(raw, 0, rows * sourceRowBytes))
    }
    // With a run buffer per worker, a slice's `src` and `quantize` (which assume the whole block's
    // values) are not used: its runs are decoded into the worker's buffer.
    const layout = {
      rows,
      cols,
      values: values.ptr,
      packed: packed.ptr,
      rowBytes,
      scratch: scratch.ptr,
      blockElements: kernels.blockElements,
      quantize: kernels.quantize,
      weighted: weighted ? { kernel: weighted, importance: qw!.ptr } : null,
    }
    const slices = rowSlices(layout, workers)
    const tasks = slices.map((s, i) => {
      if (path === 'f32') {
        return readThenRun(pool, entry, (r0 + s.first) * cols * 4, s.count * cols * 4, s.src, [s.quantize])
      }
      if (!raw) return pool.run([s.quantize])
      // Decode and quantize in runs of rows, each run's f32 values still in cache for the quantizer.
      const calls: KernelCall[] = []
      for (let r = 0; r < s.count; r += runRows) {
        const count = Math.min(runRows, s.count - r)
        const src = check ? s.src + r * cols * 4 : values.ptr + i * runRows * cols * 4
        const rawAt = raw.ptr + (s.first + r) * sourceRowBytes
        calls.push([decoder!.kernel, rawAt, src, (count * cols) / decoder!.perUnit])
        calls.push(quantizeRowsCall(layout, src, s.dst + r * rowBytes, count, s.scratch))
      }
      if (sources) return pool.run(calls)
      const at = s.first * sourceRowBytes
      return readThenRun(pool, entry, r0 * sourceRowBytes + at, s.count * sourceRowBytes, raw.ptr + at, calls)
    })
    await Promise.all(tasks)
    // Hashed on the CRC threads while the exactness check (if any) decodes on the workers.
    hash = hashKernelMemory(crc, packed.ptr, bytes)
    hash.catch(() => {})
    if (check && exactness.exact) {
      const decoded = alloc(rows * cols * 4, 'dequantized rows')
      await checkExact(pool, kernels.decode, slices, cols, values, decoded, exactness)
    }
    // The encoded bytes stay where the workers wrote them until the writer has copied them.
    const blockCrc = await hash
    regions.splice(regions.indexOf(packed), 1)
    return heldBlock(pool, packed, bytes, blockCrc)
  } finally {
    if (hash) await hash.catch(() => {})
    for (const region of regions) pool.arena.release(region)
  }
}
