// The WASM versions of the GPTQ/SparseGPT linear algebra: the inverse-Cholesky factor of a Hessian and
// the Hessian accumulation itself, on the kernels of kernels/assembly/linalg.ts. They give the same bits
// as cholesky.ts and calibration/capture.ts (same per-element operation order), only faster.

import { WhittleError } from '../../errors'
import type { Region } from '../../pool/memory-arena'
import type { WorkerPool } from '../../pool/worker-pool'

/** Rows of x copied into kernel memory per round: bounded, so a long calibration never needs M·K at once. */
const X_CHUNK_BYTES = 8 * 2 ** 20
/** Below this many columns one worker does the whole update: splitting costs more than it saves. */
const MIN_SPLIT_K = 128
const MIRROR_BLOCK = 64

/** Kernel memory for a matrix; running out is the arena's typed 'out-of-memory' error, naming `what`. */
function allocMatrix(pool: WorkerPool, bytes: number, what: string): Region {
  return pool.arena.alloc(bytes, what)
}

function requireDimension(name: string, v: number): void {
  if (!Number.isSafeInteger(v) || v <= 0) throw new WhittleError('validation', null, `${name} = ${v} is not a positive integer`)
}

/** dst = src transposed (both n×n row-major), in cache-sized blocks. */
function transposeInto(src: Float64Array, dst: Float64Array, n: number): void {
  for (let b0 = 0; b0 < n; b0 += MIRROR_BLOCK) {
    const b1 = Math.min(n, b0 + MIRROR_BLOCK)
    for (let c0 = 0; c0 < n; c0 += MIRROR_BLOCK) {
      const c1 = Math.min(n, c0 + MIRROR_BLOCK)
      for (let i = b0; i < b1; i++) for (let j = c0; j < c1; j++) dst[j * n + i] = src[i * n + j]
    }
  }
}

function notPositiveDefinite(failed: number, which: 'H' | 'inverse'): WhittleError {
  return which === 'H'
    ? new WhittleError('validation', null, `matrix is not positive definite at column ${failed - 1}; raise the damping`)
    : new WhittleError('validation', null, `the inverse is not positive definite at column ${failed - 1} (H is too ill-conditioned); raise the damping`)
}

/** Copies H into a fresh n×n region of kernel memory, checking its size first. */
function hessianRegion(pool: WorkerPool, H: Float64Array, n: number): Region {
  requireDimension('n', n)
  if (H.length < n * n) throw new WhittleError('validation', null, `the Hessian holds ${H.length} values, ${n}×${n} needs ${n * n}`)
  const region = allocMatrix(pool, n * n * 8, `a ${n}×${n} Hessian`)
  pool.arena.f64(region, 0, n * n).set(H.subarray(0, n * n))
  return region
}

/** U = the factor left in the region, transposed (the kernels leave the lower factor). */
function upperFactor(pool: WorkerPool, region: Region, n: number): Float64Array {
  const U = new Float64Array(n * n)
  transposeInto(pool.arena.f64(region, 0, n * n), U, n)
  return U
}

/**
 * H (n×n, symmetric positive definite; not modified) → the upper Cholesky factor U of H⁻¹, H⁻¹ = UᵀU:
 * the same computation as cholesky.ts inverseCholeskyUpper, in one n×n region of kernel memory (every
 * step is in place). Synchronous, on the calling thread: for small n only; inverseCholeskyUpperOnWorker
 * is the one for real layers.
 */
export function inverseCholeskyUpperWasm(pool: WorkerPool, H: Float64Array, n: number): Float64Array {
  const region = hessianRegion(pool, H, n)
  try {
    const k = pool.kernels
    let failed = k.cholesky_lower(region.ptr, n)
    if (failed !== 0) throw notPositiveDefinite(failed, 'H')
    k.invert_lower(region.ptr, n) // L⁻¹
    k.lower_gram(region.ptr, region.ptr, n) // H⁻¹ = L⁻ᵀL⁻¹
    failed = k.cholesky_lower(region.ptr, n)
    if (failed !== 0) throw notPositiveDefinite(failed, 'inverse')
    return upperFactor(pool, region, n)
  } finally {
    pool.arena.release(region)
  }
}

/**
 * inverseCholeskyUpperWasm (same bits) on one of the pool's workers, so the main thread stays free: for
 * the 5632 inputs of a 1.1B model's down_proj these four calls take tens of seconds. Cancelling the job
 * (its cancel scope, or `signal`) terminates the worker mid-call (see pool/worker-pool.ts); the region
 * is released only after that, so no stopped computation writes into memory handed out again.
 */
export async function inverseCholeskyUpperOnWorker(pool: WorkerPool, H: Float64Array, n: number, signal?: AbortSignal): Promise<Float64Array> {
  if (pool.threads === 0) return inverseCholeskyUpperWasm(pool, H, n)
  const region = hessianRegion(pool, H, n)
  try {
    const p = region.ptr
    const [first] = await pool.call([['cholesky_lower', p, n]], { signal })
    if (first !== 0) throw notPositiveDefinite(first, 'H')
    const results = await pool.call([['invert_lower', p, n], ['lower_gram', p, p, n], ['cholesky_lower', p, n]], { signal })
    if (results[2] !== 0) throw notPositiveDefinite(results[2], 'inverse')
    return upperFactor(pool, region, n)
  } finally {
    pool.arena.release(region)
  }
}

/**
 * Row boundaries splitting the upper triangle of a K×K matrix into `parts` ranges of about equal area
 * (row i holds K − i entries), on multiples of 4 so every range keeps to the kernel's 4-row tiles.
 */
export function splitTriangleRows(K: number, parts: number): number[] {
  const bounds = [0]
  const total = (K * (K + 1)) / 2
  for (let p = 1; p < parts; p++) {
    // Rows [0, b) hold b·K − b(b − 1)/2 entries; solve for b at p/parts of the total.
    const target = (total * p) / parts
    const b = (2 * K + 1 - Math.sqrt((2 * K + 1) ** 2 - 8 * target)) / 2
    const b4 = Math.min(K, Math.max(bounds[bounds.length - 1], Math.round(b / 4) * 4))
    if (b4 > bounds[bounds.length - 1] && b4 < K) bounds.push(b4)
  }
  bounds.push(K)
  return bounds
}

/**
 * A K×K f64 Hessian accumulator living in kernel memory, so the pool's workers can add token batches
 * to it in parallel: add(x, M) does H += xᵀx on the upper triangle (the order of capture.ts
 * accumulateInput, bit for bit), toArray() returns the full symmetric matrix. Call free() when done.
 */
export class KernelHessian {
  readonly K: number
  private readonly pool: WorkerPool
  private region: Region | null
  private tokenCount = 0
  private pending = 0
  private released = false
  /** add() calls run one after another, so H sees the batches in call order. */
  private queue: Promise<void> = Promise.resolve()

  /** `initial` (K×K), when given, is the starting value; otherwise H starts at zero. */
  constructor(pool: WorkerPool, K: number, initial?: Float64Array) {
    requireDimension('K', K)
    if (initial && initial.length < K * K) throw new WhittleError('validation', null, `the initial Hessian holds ${initial.length} values, needs ${K * K}`)
    this.K = K
    this.pool = pool
    this.region = allocMatrix(pool, K * K * 8, `a ${K}×${K} Hessian`)
    const view = pool.arena.f64(this.region, 0, K * K)
    if (initial) view.set(initial.subarray(0, K * K))
    else view.fill(0)
  }

  /** Tokens added so far. */
  get tokens(): number {
    return this.tokenCount
  }

  /** H += xᵀx for x f32[M, K]. x is read when this call's turn comes: keep it unchanged until it resolves. */
  add(x: Float32Array, M: number): Promise<void> {
    this.pending++
    const run = this.queue.then(() => this.addNow(x, M)).finally(() => {
      if (--this.pending === 0 && this.released) this.releaseNow()
    })
    this.queue = run.catch(() => undefined)
    return run
  }

  private async addNow(x: Float32Array, M: number): Promise<void> {
    const H = this.live()
    const K = this.K
    if (!Number.isSafeInteger(M) || M < 0) throw new WhittleError('validation', null, `M = ${M} is not a non-negative integer`)
    if (x.length < M * K) throw new WhittleError('validation', null, `x holds ${x.length} values, ${M}×${K} needs ${M * K}`)
    if (M === 0) return
    const rowsPerChunk = Math.max(1, Math.min(M, Math.floor(X_CHUNK_BYTES / (K * 4))))
    const xRegion = allocMatrix(this.pool, rowsPerChunk * K * 4, `a ${rowsPerChunk}×${K} batch of inputs`)
    try {
      const parts = K < MIN_SPLIT_K ? 1 : Math.max(1, this.pool.threads)
      const bounds = splitTriangleRows(K, parts)
      for (let t0 = 0; t0 < M; t0 += rowsPerChunk) {
        const rows = Math.min(rowsPerChunk, M - t0)
        this.pool.arena.f32(xRegion, 0, rows * K).set(x.subarray(t0 * K, (t0 + rows) * K))
        const runs: Promise<void>[] = []
        for (let p = 0; p + 1 < bounds.length; p++) {
          runs.push(this.pool.run([['hessian_accumulate', xRegion.ptr, H.ptr, rows, K, bounds[p], bounds[p + 1]]]))
        }
        await Promise.all(runs)
      }
      this.tokenCount += M
    } finally {
      this.pool.arena.release(xRegion)
    }
  }

  /** The full symmetric K×K matrix (upper triangle mirrored onto the lower). */
  toArray(): Float64Array {
    const K = this.K
    const out = this.pool.arena.f64(this.live(), 0, K * K).slice()
    for (let b0 = 0; b0 < K; b0 += MIRROR_BLOCK) {
      for (let c0 = b0; c0 < K; c0 += MIRROR_BLOCK) {
        const b1 = Math.min(K, b0 + MIRROR_BLOCK), c1 = Math.min(K, c0 + MIRROR_BLOCK)
        for (let i = b0; i < b1; i++) for (let j = Math.max(c0, i + 1); j < c1; j++) out[j * K + i] = out[i * K + j]
      }
    }
    return out
  }

  /** Copies the accumulator as it is (upper triangle accumulated, lower as it started) into `target`. */
  copyTo(target: Float64Array): void {
    const K = this.K
    if (target.length < K * K) throw new WhittleError('validation', null, `the target holds ${target.length} values, needs ${K * K}`)
    target.set(this.pool.arena.f64(this.live(), 0, K * K))
  }

  /**
   * Releases the kernel memory; the accumulator cannot be used afterwards. Safe to call twice. With
   * add() calls still running, the memory goes back when they end (the workers are still writing it).
   */
  free(): void {
    this.released = true
    if (this.pending === 0) this.releaseNow()
  }

  private releaseNow(): void {
    if (this.region) this.pool.arena.release(this.region)
    this.region = null
  }

  private live(): Region {
    if (this.released || !this.region) throw new WhittleError('validation', null, 'this Hessian accumulator was already freed')
    return this.region
  }
}

/**
 * H (K×K, in JS memory) += xᵀx on its upper triangle, like capture.ts accumulateInput, split across
 * the pool's workers. Copies H into kernel memory and back: for many batches, keep a KernelHessian.
 */
export async function accumulateHessianWasm(pool: WorkerPool, x: Float32Array, M: number, K: number, H: Float64Array): Promise<void> {
  requireDimension('K', K)
  const acc = new KernelHessian(pool, K, H)
  try {
    await acc.add(x, M)
    acc.copyTo(H)
  } finally {
    acc.free()
  }
}
