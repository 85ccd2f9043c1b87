// The Hessian accumulation of calibration on the kernels: H += xᵀx over the inputs of a Linear, split
// across the pool's workers (kernels/assembly/hessian.ts hessian_accumulate), with H in kernel memory or,
// when it is too large for that, banded (H in JS memory, a few rows at a time in kernel memory). A batch
// that finds no room in kernel memory goes through the kernels' twins on this thread. Every way gives the
// bits of accumulateInput in capture.ts (same per-element operation order). GPTQ and SparseGPT read the
// result; their Cholesky factorization is compress/linalg/kernels.ts.

import { WhittleError } from '../errors'
import type { Region } from '../pool/memory-arena'
import type { KernelCall, WorkerPool } from '../pool/worker-pool'
import { colInputStats } from '../../../kernels/reference/channels'
import { HESSIAN_CHUNK_TOKENS, hessianAccumulate } from '../../../kernels/reference/hessian'

/** Rows of x copied into kernel memory per round: bounded, so a long calibration never needs M·K at once. */
const X_CHUNK_BYTES = 8 * 2 ** 20
/** Below this many columns one worker does the whole update: splitting costs more than it saves. */
const MIN_SPLIT_K = 128
/** Side of the square blocks the upper triangle is mirrored in (cache-sized). */
const MIRROR_BLOCK = 64
/**
 * Kernel memory a banded accumulator and every accumulator's temporary copies of inputs leave free: the
 * block's forward pass goes on beside them and has no slower path to fall back to.
 */
const FORWARD_RESERVE_BYTES = 16 * 2 ** 20
/** A banded Hessian's rows in kernel memory at a time: about this many bytes (a multiple of 4 rows). */
const BAND_BYTES = 2 * 2 ** 20

function requireDimension(name: string, v: number): void {
  if (!Number.isSafeInteger(v) || v <= 0)
    throw new WhittleError('validation', null, `${name} = ${v} is not a positive integer`)
}

/** Kernel memory for a matrix; running out is the arena's typed 'out-of-memory' error, naming `what`. */
function allocMatrix(pool: WorkerPool, bytes: number, what: string): Region {
  return pool.arena.alloc(bytes, what)
}

/** A region that leaves FORWARD_RESERVE_BYTES free, or null (no room: the caller takes a slower path). */
function allocSpare(pool: WorkerPool, bytes: number, what: string): Region | null {
  if (pool.arena.headroom - bytes < FORWARD_RESERVE_BYTES) return null
  return pool.arena.tryAlloc([bytes], what)?.[0] ?? null
}

/**
 * Row boundaries splitting rows [r0, r1) of the upper triangle of a K×K matrix into `parts` ranges of
 * about equal area (row i holds K − i entries), inner boundaries on multiples of 4 so every range keeps
 * to the kernel's 4-row tiles.
 */
export function splitTriangleRows(K: number, parts: number, r0 = 0, r1 = K): number[] {
  // Rows [0, b) hold F(b) = b·K − b(b − 1)/2 entries; each boundary solves F(b) = its share of the area.
  const F = (b: number): number => b * K - (b * (b - 1)) / 2
  const bounds = [r0]
  for (let p = 1; p < parts; p++) {
    const target = F(r0) + ((F(r1) - F(r0)) * p) / parts
    const b = (2 * K + 1 - Math.sqrt((2 * K + 1) ** 2 - 8 * target)) / 2
    const b4 = Math.min(r1, Math.max(bounds[bounds.length - 1], Math.round(b / 4) * 4))
    if (b4 > bounds[bounds.length - 1] && b4 < r1) bounds.push(b4)
  }
  bounds.push(r1)
  return bounds
}

/** Per-column statistics of the inputs added so far (capture.ts InputStats' fields). */
export interface ColumnStats {
  absmax: Float32Array
  sumAbs: Float64Array
  sumSq: Float64Array
}

/**
 * A K×K f64 Hessian accumulator that the pool's workers add token batches to in parallel: add(x, M) does
 * H += xᵀx on the upper triangle (the order of capture.ts accumulateInput, bit for bit), toArray()
 * returns the full symmetric matrix. Call free() when done.
 *
 * H lives in kernel memory, or, `banded`, in JS memory, for an H larger than kernel memory can hold (a 7B
 * down_proj's is 925 MiB): each batch then visits H a band of rows at a time, copied into kernel memory
 * and back, which costs two copies of H per batch instead of accumulating it on one thread in JS.
 */
export class KernelHessian {
  readonly K: number
  private readonly pool: WorkerPool
  /** H in kernel memory; in banded mode, the band's place there. */
  private region: Region | null
  /** Banded mode: H itself, in JS memory, and the rows of a band. */
  private host: Float64Array | null = null
  /** Banded mode: toArray() gave H away, so it takes no more batches. */
  private handedOver = false
  private readonly bandRows: number
  /**
   * absmax (f32), then Σ|x| and Σx² (f64) per column, at statsOffsets, when asked for: accumulated from the
   * same batches. One region, so a failed allocation leaves nothing half-held.
   */
  private statsRegion: Region | null = null
  private readonly statsOffsets: [number, number, number]
  private tokenCount = 0
  private pending = 0
  private released = false
  /** add() calls run one after another, so H sees the batches in call order. */
  private queue: Promise<void> = Promise.resolve()

  /**
   * `initial` (K×K), when given, is the starting value; otherwise H starts at zero. With `columnStats`,
   * each batch also goes into per-column statistics (kernels' col_input_stats, read by columnStats()), so
   * calibration does not walk the inputs a second time on the main thread. `banded` keeps H in JS memory
   * (see the class), moving about `bandBytes` of it at a time (default 2 MiB, at least 4 rows).
   */
  constructor(
    pool: WorkerPool,
    K: number,
    initial?: Float64Array,
    options: { columnStats?: boolean; banded?: boolean; bandBytes?: number } = {},
  ) {
    requireDimension('K', K)
    if (initial && initial.length < K * K)
      throw new WhittleError('validation', null, `the initial Hessian holds ${initial.length} values, needs ${K * K}`)
    this.K = K
    this.pool = pool
    if (options.banded) {
      const bandBytes = options.bandBytes ?? BAND_BYTES
      this.bandRows = Math.min(K, Math.max(4, Math.floor(bandBytes / (K * 8 * 4)) * 4))
      const what = `a ${this.bandRows}-row band of a ${K}×${K} Hessian`
      this.region = allocSpare(pool, this.bandRows * K * 8, what)
      if (!this.region)
        throw new WhittleError('out-of-memory', null, `${what} does not fit in kernel memory beside the forward pass`)
      this.host = initial ? initial.slice(0, K * K) : new Float64Array(K * K)
    } else {
      this.bandRows = K
      this.region = allocMatrix(pool, K * K * 8, `a ${K}×${K} Hessian`)
      const view = pool.arena.f64(this.region, 0, K * K)
      if (initial) view.set(initial.subarray(0, K * K))
      else view.fill(0)
    }
    // Each array 16-byte aligned, for the kernel's v128 loads.
    const sumsAt = Math.ceil((K * 4) / 16) * 16
    this.statsOffsets = [0, sumsAt, sumsAt + K * 8]
    if (options.columnStats) {
      try {
        this.statsRegion = allocMatrix(pool, sumsAt + K * 16, `the column statistics of ${K} inputs`)
      } catch (e) {
        this.free()
        throw e
      }
      pool.arena.u8(this.statsRegion).fill(0)
    }
  }

  /** Tokens added so far. */
  get tokens(): number {
    return this.tokenCount
  }

  /** H += xᵀx for x f32[M, K]. x is read when this call's turn comes: keep it unchanged until it resolves. */
  async add(x: Float32Array, M: number): Promise<void> {
    this.checkBatch(x, M)
    return this.enqueue(() => this.addNow(x, M))
  }

  /**
   * add() for an x that may change as soon as this returns (a forward pass's buffer): x is copied now,
   * into kernel memory when a region for it is free there (one copy, no JS garbage, and the workers read
   * it in place), else into a JS copy. Same bits either way. (Async only for its errors: everything up to
   * the copy runs before it returns.)
   */
  async addSnapshot(x: Float32Array, M: number): Promise<void> {
    this.checkBatch(x, M)
    if (M === 0) return this.add(x, 0)
    const staged = allocSpare(this.pool, M * this.K * 4, `a ${M}×${this.K} batch of inputs`)
    if (!staged) return this.add(x.slice(0, M * this.K), M)
    this.pool.arena.f32(staged, 0, M * this.K).set(x.subarray(0, M * this.K))
    return this.enqueue(() => this.accumulateBatchAt(staged.ptr, M)).finally(() => this.pool.arena.release(staged))
  }

  /**
   * add() for inputs x f32[M, K] already in kernel memory at byte address `ptr`, which the caller keeps
   * unchanged until this resolves (a forward pass's buffer held for the hook, forward/causal-lm.ts
   * HeldInput): the workers read them in place, with no copy. The bits of add().
   */
  async addInKernelMemory(ptr: number, M: number): Promise<void> {
    if (!Number.isSafeInteger(ptr) || ptr <= 0 || ptr % 4 !== 0)
      throw new WhittleError('validation', null, `${ptr} is not the address of f32 inputs in kernel memory`)
    this.checkBatch(null, M)
    if (M === 0) return this.add(new Float32Array(0), 0)
    return this.enqueue(() => this.accumulateBatchAt(ptr, M))
  }

  private checkBatch(x: Float32Array | null, M: number): void {
    if (this.handedOver)
      throw new WhittleError('validation', null, 'this Hessian accumulator gave its matrix away (toArray)')
    if (!Number.isSafeInteger(M) || M < 0)
      throw new WhittleError('validation', null, `M = ${M} is not a non-negative integer`)
    if (x && x.length < M * this.K)
      throw new WhittleError('validation', null, `x holds ${x.length} values, ${M}×${this.K} needs ${M * this.K}`)
  }

  /** Runs `work` after every earlier add, in call order; the memory goes back once the last one ends after free(). */
  private enqueue(work: () => Promise<void>): Promise<void> {
    this.pending++
    const run = this.queue.then(work).finally(() => {
      if (--this.pending === 0 && this.released) this.releaseNow()
    })
    this.queue = run.catch(() => undefined)
    return run
  }

  /** H (and the column statistics) += the rows [0, rows) of the inputs at xPtr in kernel memory. */
  private async accumulateAt(xPtr: number, rows: number): Promise<void> {
    const region = this.live()
    const K = this.K
    const host = this.host
    if (!host) {
      await this.accumulateRows(xPtr, rows, region.ptr, 0, K, true)
      return
    }
    for (let b0 = 0; b0 < K; b0 += this.bandRows) {
      const b1 = Math.min(K, b0 + this.bandRows)
      const band = this.pool.arena.f64(region, 0, (b1 - b0) * K)
      band.set(host.subarray(b0 * K, b1 * K))
      // The kernel finds row r of H at H + 8·r·K: a base 8·b0·K below the band puts row b0 at its start.
      // Wasm's 32-bit address arithmetic wraps, so a base "below 0" (taken mod 2³²) lands there too.
      const base = (region.ptr - b0 * K * 8) >>> 0
      await this.accumulateRows(xPtr, rows, base, b0, b1, b0 === 0)
      host.set(this.pool.arena.f64(region, 0, (b1 - b0) * K), b0 * K)
    }
  }

  /** hessian_accumulate over rows [r0, r1) of H (at base), split across the workers; the column statistics too. */
  private async accumulateRows(
    xPtr: number,
    rows: number,
    base: number,
    r0: number,
    r1: number,
    stats: boolean,
  ): Promise<void> {
    const K = this.K
    const parts = K < MIN_SPLIT_K ? 1 : Math.max(1, this.pool.threads)
    const bounds = splitTriangleRows(K, parts, r0, r1)
    const runs: KernelCall[][] = []
    for (let p = 0; p + 1 < bounds.length; p++) {
      runs.push([['hessian_accumulate', xPtr, base, rows, K, bounds[p], bounds[p + 1]]])
    }
    // The statistics ride with the last range (the triangle's smallest rows end it, so its share is light).
    const st = this.statsRegion
    if (st && stats) {
      const [a, b, c] = this.statsOffsets.map((o) => st.ptr + o)
      runs[runs.length - 1].push(['col_input_stats', xPtr, rows, K, a, b, c])
    }
    await Promise.all(runs.map((calls) => this.pool.run(calls)))
  }

  /**
   * A batch in kernel memory (staged or held) in one pass: the kernel sums its tokens in chunks of
   * HESSIAN_CHUNK_TOKENS from the batch's start, as addNow's copies (whole chunks each) do, so H gets the
   * same sums; and a banded H is copied in and out once per batch, not once per copy.
   */
  private async accumulateBatchAt(ptr: number, M: number): Promise<void> {
    await this.accumulateAt(ptr, M)
    this.tokenCount += M
  }

  /**
   * H and the statistics += x on this thread, through the kernels' twins (the same bits), for a batch that
   * finds no room in kernel memory: slower, but calibration goes on.
   */
  private accumulateHere(x: Float32Array, M: number): void {
    const K = this.K
    hessianAccumulate(x, this.hostOrNull() ?? this.pool.arena.f64(this.live(), 0, K * K), M, K)
    const st = this.statsRegion
    if (st) {
      const [a, b, c] = this.statsOffsets
      colInputStats(
        x,
        M,
        K,
        this.pool.arena.f32(st, a, K),
        this.pool.arena.f64(st, b, K),
        this.pool.arena.f64(st, c, K),
      )
    }
    this.tokenCount += M
  }

  /** Whole f32 chunks of the kernel's (HESSIAN_CHUNK_TOKENS) per run, about X_CHUNK_BYTES of inputs. */
  private rowsPerChunk(M: number): number {
    const perChunk = Math.floor(X_CHUNK_BYTES / (this.K * 4 * HESSIAN_CHUNK_TOKENS)) * HESSIAN_CHUNK_TOKENS
    return Math.min(M, Math.max(HESSIAN_CHUNK_TOKENS, perChunk))
  }

  private async addNow(x: Float32Array, M: number): Promise<void> {
    this.live()
    const K = this.K
    if (M === 0) return
    // Whole f32 chunks of the kernel's (HESSIAN_CHUNK_TOKENS) per copy, so a batch sums in the same chunks
    // however it is copied in: the bits of hessianAccumulate over the whole batch.
    const rowsPerChunk = this.rowsPerChunk(M)
    const xRegion = allocSpare(this.pool, rowsPerChunk * K * 4, `a ${rowsPerChunk}×${K} batch of inputs`)
    if (!xRegion) {
      this.accumulateHere(x, M)
      return
    }
    try {
      for (let t0 = 0; t0 < M; t0 += rowsPerChunk) {
        const rows = Math.min(rowsPerChunk, M - t0)
        this.pool.arena.f32(xRegion, 0, rows * K).set(x.subarray(t0 * K, (t0 + rows) * K))
        await this.accumulateAt(xRegion.ptr, rows)
      }
      this.tokenCount += M
    } finally {
      this.pool.arena.release(xRegion)
    }
  }

  /** Copies of the per-column statistics of every batch added (constructed with `columnStats`). */
  columnStats(): ColumnStats {
    this.live()
    const st = this.statsRegion
    if (!st) throw new WhittleError('validation', null, 'this Hessian accumulator keeps no column statistics')
    const K = this.K
    const [a, b, c] = this.statsOffsets
    return {
      absmax: this.pool.arena.f32(st, a, K).slice(),
      sumAbs: this.pool.arena.f64(st, b, K).slice(),
      sumSq: this.pool.arena.f64(st, c, K).slice(),
    }
  }

  /**
   * The full symmetric K×K matrix (upper triangle mirrored onto the lower). Banded, it is H itself, not a
   * copy (a matrix this large is not copied): the accumulator takes no more batches afterwards.
   */
  toArray(): Float64Array {
    const K = this.K
    const host = this.hostOrNull()
    if (host) this.handedOver = true
    const out = host ?? this.pool.arena.f64(this.live(), 0, K * K).slice()
    for (let b0 = 0; b0 < K; b0 += MIRROR_BLOCK) {
      for (let c0 = b0; c0 < K; c0 += MIRROR_BLOCK) {
        const b1 = Math.min(K, b0 + MIRROR_BLOCK),
          c1 = Math.min(K, c0 + MIRROR_BLOCK)
        for (let i = b0; i < b1; i++) for (let j = Math.max(c0, i + 1); j < c1; j++) out[j * K + i] = out[i * K + j]
      }
    }
    return out
  }

  /** Copies the accumulator as it is (upper triangle accumulated, lower as it started) into `target`. */
  copyTo(target: Float64Array): void {
    const K = this.K
    if (target.length < K * K)
      throw new WhittleError('validation', null, `the target holds ${target.length} values, needs ${K * K}`)
    target.set(this.hostOrNull() ?? this.pool.arena.f64(this.live(), 0, K * K))
  }

  /**
   * Releases the kernel memory; the accumulator cannot be used afterwards. Safe to call twice. With
   * add() calls still running, the memory goes back when they end (the workers are still writing it).
   */
  free(): void {
    this.released = true
    if (this.pending === 0) this.releaseNow()
  }

  /** Banded mode's H (after checking the accumulator is live), else null. */
  private hostOrNull(): Float64Array | null {
    this.live()
    return this.host
  }

  private releaseNow(): void {
    this.host = null
    if (this.region) this.pool.arena.release(this.region)
    this.region = null
    if (this.statsRegion) this.pool.arena.release(this.statsRegion)
    this.statsRegion = null
  }

  private live(): Region {
    if (this.released || !this.region)
      throw new WhittleError('validation', null, 'this Hessian accumulator was already freed')
    return this.region
  }
}

/**
 * H (K×K, in JS memory) += xᵀx on its upper triangle, like capture.ts accumulateInput, split across
 * the pool's workers. Copies H into kernel memory and back: for many batches, keep a KernelHessian.
 */
export async function accumulateHessianWasm(
  pool: WorkerPool,
  x: Float32Array,
  M: number,
  K: number,
  H: Float64Array,
): Promise<void> {
  requireDimension('K', K)
  const acc = new KernelHessian(pool, K, H)
  try {
    await acc.add(x, M)
    acc.copyTo(H)
  } finally {
    acc.free()
  }
}
