// The kernel-memory side of GPTQ's column loop (compress/methods/gptq.ts): the lazy update
// W[:, i2:] -= Err · Hinv[i1:i2, i2:] (a matmul, the dominant cost, split by output columns across the
// workers) and the column loop inside a block (gptq_block_rows, split by rows across the workers), with
// the buffers both need. The TS lazy update is the reference path's.

import type { QuantGrid } from '../../numerics/minmax-grid'
import type { Region } from '../../pool/memory-arena'
import type { KernelCall, WorkerPool } from '../../pool/worker-pool'

const f = Math.fround

/** Kernel-memory buffers of the WASM lazy update, held for one Linear. */
export interface KernelBuffers {
  pool: WorkerPool
  /** The permuted weight W [rows, cols], updated in place. */
  w: Region
  /** Err [rows, B]. */
  err: Region
  /** −Hinv[i1:i2, i2:]ᵀ as [cols − i2, B]. */
  v: Region
  /** Err · v ᵀ, [rows, cols − i2]. */
  y: Region
}

export function allocKernelBuffers(pool: WorkerPool, rows: number, cols: number, B: number): KernelBuffers | null {
  const tail = Math.max(1, cols - B)
  const held = pool.arena.tryAlloc([rows * cols * 4, rows * B * 4, tail * B * 4, rows * tail * 4])
  // Not enough kernel memory for this Linear: the TS update does the same work, slower.
  if (!held) return null
  const [w, err, v, y] = held
  return { pool, w, err, v, y }
}

export function releaseKernelBuffers(k: KernelBuffers): void {
  for (const r of [k.w, k.err, k.v, k.y]) k.pool.arena.release(r)
}

/** TS: W[:, i2:] -= Err · Hinv[i1:i2, i2:], each sum in f64 then rounded once. */
export function lazyUpdateTs(
  Wp: Float32Array,
  err: Float32Array,
  U: Float32Array,
  rows: number,
  cols: number,
  B: number,
  i1: number,
  i2: number,
): void {
  const count = i2 - i1
  for (let r = 0; r < rows; r++) {
    const row = r * cols
    for (let j = i2; j < cols; j++) {
      let s = 0
      for (let i = 0; i < count; i++) s += err[r * B + i] * U[(i1 + i) * cols + j]
      Wp[row + j] = f(Wp[row + j] - s)
    }
  }
}

/**
 * WASM: y = Err · (−Hinv[i1:i2, i2:])ᵀ by matmul_nt, then W[:, i2:] += y row by row; each worker takes
 * a range of output columns and does both steps for it, so no second round trip is needed.
 * Requires a full block (count = B), which every block but the last is — and the last needs no update.
 */
export async function lazyUpdateWasm(
  k: KernelBuffers,
  U: Float32Array,
  rows: number,
  cols: number,
  B: number,
  i1: number,
  i2: number,
): Promise<void> {
  const N = cols - i2
  const v = k.pool.arena.f32(k.v, 0, N * B)
  for (let i = 0; i < B; i++) {
    const u = (i1 + i) * cols + i2
    for (let j = 0; j < N; j++) v[j * B + i] = -U[u + j]
  }
  // Small products are cheaper than a round trip to a worker (as in forward/parallel-ops.ts).
  const parts = rows * N * B < 1 << 18 || k.pool.threads <= 1 ? 1 : k.pool.threads
  const step = Math.ceil(N / parts / 16) * 16
  const runs: Promise<void>[] = []
  for (let n0 = 0; n0 < N; n0 += step) {
    const n1 = Math.min(N, n0 + step)
    const calls: KernelCall[] = [['matmul_nt', k.err.ptr, k.v.ptr, k.y.ptr, rows, B, N, n0, n1]]
    for (let r = 0; r < rows; r++)
      calls.push(['add_inplace', k.w.ptr + (r * cols + i2 + n0) * 4, k.y.ptr + (r * N + n0) * 4, n1 - n0])
    runs.push(k.pool.run(calls))
  }
  await Promise.all(runs)
}

/** Kernel memory of gptq_block_rows beside KernelBuffers: the block's diagonal block of U, the row grids. */
export interface BlockBuffers {
  pool: WorkerPool
  /** U[i1:i2, i1:i2] as [B, B]. */
  u: Region
  /** (scale, zero) per row, [rows, 2]. */
  grids: Region
  /** u8 [rows, B]: the block's weights to keep at zero (preserve_zeros), or null when none is. */
  zeroMask: Region | null
}

/** With `zeroMask`, room for the block's mask of weights that stay zero as well. */
export function allocBlockBuffers(pool: WorkerPool, rows: number, B: number, zeroMask = false): BlockBuffers | null {
  const held = pool.arena.tryAlloc(zeroMask ? [B * B * 4, rows * 2 * 4, rows * B] : [B * B * 4, rows * 2 * 4])
  // Without the memory the column loop runs on this thread, with the same result.
  if (!held) return null
  return { pool, u: held[0], grids: held[1], zeroMask: held[2] ?? null }
}

export function releaseBlockBuffers(b: BlockBuffers): void {
  b.pool.arena.release(b.u)
  b.pool.arena.release(b.grids)
  if (b.zeroMask) b.pool.arena.release(b.zeroMask)
}

/** Copies the block's rows of `zeros` (u8 [rows, cols], working column order) into b.zeroMask as [rows, B]. */
export function loadBlockZeroMask(
  b: BlockBuffers,
  zeros: Uint8Array,
  rows: number,
  cols: number,
  B: number,
  i1: number,
  count: number,
): void {
  if (!b.zeroMask) return
  const m = b.pool.arena.u8(b.zeroMask, 0, rows * B)
  for (let r = 0; r < rows; r++) m.set(zeros.subarray(r * cols + i1, r * cols + i1 + count), r * B)
}

/** Copies the block's diagonal block U[i1:i1+count, i1:i1+count] into b.u as [B, B]. */
export function loadBlockU(b: BlockBuffers, U: Float32Array, cols: number, B: number, i1: number, count: number): void {
  const u = b.pool.arena.f32(b.u, 0, B * B)
  for (let i = 0; i < count; i++) u.set(U.subarray((i1 + i) * cols + i1, (i1 + i) * cols + i1 + count), i * B)
}

/**
 * The column loop for columns [i1 + from, i1 + to) of the block [i1, i1 + count), all on `grids`, on the
 * workers with the rows split: Q replaces those columns of the working weight in kernel memory, the scaled
 * errors go to k.err for the lazy update. Waits for every range before returning or throwing, so no
 * worker still writes when the caller releases the memory.
 */
export async function quantizePieceOnWorkers(
  b: BlockBuffers,
  k: KernelBuffers,
  grids: QuantGrid[],
  rows: number,
  cols: number,
  B: number,
  i1: number,
  count: number,
  from: number,
  to: number,
): Promise<void> {
  const gv = b.pool.arena.f32(b.grids, 0, rows * 2)
  for (let r = 0; r < rows; r++) {
    gv[2 * r] = grids[r].scale
    gv[2 * r + 1] = grids[r].zero
  }
  const maxq = grids[0].maxq
  // As in lazyUpdateWasm: small pieces are cheaper on one worker than split.
  const work = rows * (to - from) * (count - from)
  const parts = work < 1 << 19 || b.pool.threads <= 1 ? 1 : b.pool.threads
  const step = Math.ceil(rows / parts)
  const runs: Promise<void>[] = []
  for (let r0 = 0; r0 < rows; r0 += step) {
    const r1 = Math.min(rows, r0 + step)
    const mask = b.zeroMask ? b.zeroMask.ptr : 0
    const args = [k.w.ptr, cols, i1, count, from, to, b.u.ptr, B, k.err.ptr, b.grids.ptr, maxq, r0, r1, mask]
    runs.push(b.pool.run([['gptq_block_rows', ...args]]))
  }
  const settled = await Promise.allSettled(runs)
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected')
  if (failed) throw failed.reason
}
