// The WASM versions of the GPTQ/SparseGPT linear algebra: the inverse-Cholesky factor of a Hessian, on
// the kernels of kernels/assembly/linalg.ts. They give the same bits as cholesky.ts (same per-element
// operation order), only faster. The Hessian itself is accumulated by calibration/kernel-hessian.ts.
// inverseCholeskyUpperParallel splits each O(n³) step by rows across the pool's workers (the kernels'
// step entry points); since each element's operations keep their order, that too gives the same bits.

import { WhittleError } from '../../errors'
import type { Region } from '../../pool/memory-arena'
import type { KernelCall, WorkerPool } from '../../pool/worker-pool'

const MIRROR_BLOCK = 64

/** Kernel memory for a matrix; running out is the arena's typed 'out-of-memory' error, naming `what`. */
function allocMatrix(pool: WorkerPool, bytes: number, what: string): Region {
  return pool.arena.alloc(bytes, what)
}

function requireDimension(name: string, v: number): void {
  if (!Number.isSafeInteger(v) || v <= 0)
    throw new WhittleError('validation', null, `${name} = ${v} is not a positive integer`)
}

/** dst = src transposed (both n×n row-major), in cache-sized blocks; an f32 dst rounds each value once. */
function transposeInto(src: Float64Array, dst: Float64Array | Float32Array, n: number): void {
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
    : new WhittleError(
        'validation',
        null,
        `the inverse is not positive definite at column ${failed - 1} (H is too ill-conditioned); raise the damping`,
      )
}

/** Copies H into a fresh n×n region of kernel memory, checking its size first. */
function hessianRegion(pool: WorkerPool, H: Float64Array, n: number): Region {
  requireDimension('n', n)
  if (H.length < n * n)
    throw new WhittleError('validation', null, `the Hessian holds ${H.length} values, ${n}×${n} needs ${n * n}`)
  const region = allocMatrix(pool, n * n * 8, `a ${n}×${n} Hessian`)
  pool.arena.f64(region, 0, n * n).set(H.subarray(0, n * n))
  return region
}

/**
 * U = the factor left in the region, transposed (the kernels leave the lower factor), into `U`: an f32
 * destination rounds each value once, the same values as Float32Array.from of the f64 factor.
 */
function upperFactor<T extends Float64Array | Float32Array>(pool: WorkerPool, region: Region, n: number, U: T): T {
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
    factorHere(pool, region, n)
    return upperFactor(pool, region, n, new Float64Array(n * n))
  } finally {
    pool.arena.release(region)
  }
}

/** The four steps of inverseCholeskyUpperWasm, in place in `region`, on this thread. */
function factorHere(pool: WorkerPool, region: Region, n: number): void {
  const k = pool.kernels
  let failed = k.cholesky_lower(region.ptr, n)
  if (failed !== 0) throw notPositiveDefinite(failed, 'H')
  k.invert_lower(region.ptr, n) // L⁻¹
  k.lower_gram(region.ptr, region.ptr, n) // H⁻¹ = L⁻ᵀL⁻¹
  failed = k.cholesky_lower(region.ptr, n)
  if (failed !== 0) throw notPositiveDefinite(failed, 'inverse')
}

/**
 * inverseCholeskyUpperWasm (same bits) on one of the pool's workers, so the main thread stays free: for
 * the 5632 inputs of a 1.1B model's down_proj these four calls take tens of seconds. Cancelling the job
 * (its cancel scope, or `signal`) terminates the worker mid-call (see pool/worker-pool.ts); the region
 * is released only after that, so no stopped computation writes into memory handed out again.
 */
export async function inverseCholeskyUpperOnWorker(
  pool: WorkerPool,
  H: Float64Array,
  n: number,
  signal?: AbortSignal,
): Promise<Float64Array> {
  if (pool.threads === 0) return inverseCholeskyUpperWasm(pool, H, n)
  const region = hessianRegion(pool, H, n)
  try {
    const p = region.ptr
    const [first] = await pool.call([['cholesky_lower', p, n]], { signal })
    if (first !== 0) throw notPositiveDefinite(first, 'H')
    const results = await pool.call(
      [
        ['invert_lower', p, n],
        ['lower_gram', p, p, n],
        ['cholesky_lower', p, n],
      ],
      { signal },
    )
    if (results[2] !== 0) throw notPositiveDefinite(results[2], 'inverse')
    return upperFactor(pool, region, n, new Float64Array(n * n))
  } finally {
    pool.arena.release(region)
  }
}

/** Below this many multiply-adds a step runs on one worker: a round trip costs more than the split saves. */
const PARALLEL_MIN_WORK = 1 << 22

/**
 * Splits rows [start, end) into at most `parts` ranges of about equal total `cost`, with boundaries at
 * multiples of 4 from `start` (the kernels' tile height) and the first range at least `firstMin` rows long
 * (it also factors the next panel, which must lie inside it).
 */
export function splitRows(
  start: number,
  end: number,
  parts: number,
  cost: (row: number) => number,
  firstMin = 0,
): [number, number][] {
  let total = 0
  for (let r = start; r < end; r++) total += cost(r)
  const ranges: [number, number][] = []
  let r0 = start
  let acc = 0
  let r = start
  for (let part = 1; part < parts && r0 < end; part++) {
    const target = (total * part) / parts
    while (r < end && acc + cost(r) <= target) acc += cost(r++)
    let r1 = start + Math.round((r - start) / 4) * 4
    if (part === 1) r1 = Math.max(r1, start + firstMin)
    r1 = Math.min(end, r1)
    if (r1 <= r0) continue
    ranges.push([r0, r1])
    for (; r < r1; r++) acc += cost(r)
    r0 = r1
  }
  if (r0 < end) ranges.push([r0, end])
  return ranges
}

/**
 * Waits for every run, then throws the first failure: a cancel or a crashed worker must not let the caller
 * release kernel memory while other workers may still be writing into it.
 */
async function allSettled<T>(runs: Promise<T>[]): Promise<T[]> {
  const settled = await Promise.allSettled(runs)
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected')
  if (failed) throw failed.reason
  return settled.map((s) => (s as PromiseFulfilledResult<T>).value)
}

/** How many workers a step of `work` multiply-adds is worth. */
function partsFor(pool: WorkerPool, work: number): number {
  return work < PARALLEL_MIN_WORK ? 1 : Math.max(1, pool.threads)
}

/**
 * A right-looking panel loop on the workers: `panel(p0)` runs first, then per panel the rows below it are
 * updated in ranges on several workers (`below(p0, r0, r1)`), the first range also running the next
 * panel's own step (its rows lie inside that range, and the other ranges read only the current panel).
 * Returns the first non-zero result of a panel step (a failed pivot), or 0.
 */
async function panelLoop(
  pool: WorkerPool,
  n: number,
  panel: (p0: number) => KernelCall,
  below: (p0: number, r0: number, r1: number) => KernelCall,
  cost: (p1: number) => (row: number) => number,
  signal?: AbortSignal,
): Promise<number> {
  const P = pool.kernels.linalg_panel_rows()
  const [first] = await pool.call([panel(0)], { signal })
  if (first !== 0) return first
  for (let p0 = 0; p0 + P < n; p0 += P) {
    const p1 = p0 + P
    const rowCost = cost(p1)
    let work = 0
    for (let r = p1; r < n; r++) work += rowCost(r)
    const ranges = splitRows(p1, n, partsFor(pool, work * P), rowCost, Math.min(n - p1, P))
    const runs = ranges.map(([r0, r1], i) =>
      pool.call(i === 0 ? [below(p0, r0, r1), panel(p1)] : [below(p0, r0, r1)], { signal }),
    )
    const results = await allSettled(runs)
    if (results[0][1] !== 0) return results[0][1]
  }
  return 0
}

/** In place on the workers: the region's symmetric n×n matrix (upper triangle read) → its lower Cholesky factor. */
async function choleskyParallel(
  pool: WorkerPool,
  ptr: number,
  n: number,
  which: 'H' | 'inverse',
  signal?: AbortSignal,
) {
  const failed = await panelLoop(
    pool,
    n,
    (p0) => ['cholesky_panel', ptr, n, p0],
    (p0, r0, r1) => ['cholesky_trailing', ptr, n, p0, r0, r1],
    () => (row) => n - row,
    signal,
  )
  if (failed !== 0) throw notPositiveDefinite(failed, which)
  await pool.run([['cholesky_finish', ptr, n]], { signal })
}

/** In place on the workers: lower-triangular L → L⁻¹. */
async function invertLowerParallel(pool: WorkerPool, ptr: number, n: number, signal?: AbortSignal): Promise<void> {
  await panelLoop(
    pool,
    n,
    (p0) => ['invert_lower_panel', ptr, n, p0],
    (p0, r0, r1) => ['invert_lower_below', ptr, n, p0, r0, r1],
    (p1) => () => p1, // each row: the columns left of the panel, times the panel
    signal,
  )
}

/**
 * Lᵀ·L of the lower-triangular L in `src` on the workers, into a fresh region (rows split: out must be
 * apart from L), which it returns; `src` is released. Without kernel memory for the second n×n region, in
 * place on one worker.
 */
async function lowerGramParallel(pool: WorkerPool, src: Region, n: number, signal?: AbortSignal): Promise<Region> {
  let out: Region
  try {
    out = allocMatrix(pool, n * n * 8, `the ${n}×${n} inverse Hessian`)
  } catch (e) {
    if (!(e instanceof WhittleError && e.code === 'out-of-memory')) throw e
    await pool.run([['lower_gram', src.ptr, src.ptr, n]], { signal })
    return src
  }
  try {
    const rowCost = (row: number): number => (n - row) * (row + 1)
    const ranges = splitRows(0, n, partsFor(pool, (n * n * n) / 6), rowCost)
    await allSettled(ranges.map(([r0, r1]) => pool.run([['lower_gram_rows', src.ptr, out.ptr, n, r0, r1]], { signal })))
    await pool.run([['gram_symmetrize', out.ptr, n]], { signal })
  } catch (e) {
    pool.arena.release(out)
    throw e
  }
  pool.arena.release(src)
  return out
}

/**
 * inverseCholeskyUpperWasm (same bits) with each step split by rows across the pool's workers: the two
 * Cholesky factorizations and the triangular inverse panel by panel (one round trip per panel), the Gram
 * product in row ranges into a second n×n region. Cancelling stops the workers mid-call, as
 * inverseCholeskyUpperOnWorker; kernel memory is released only after every call has ended.
 */
export async function inverseCholeskyUpperParallel(
  pool: WorkerPool,
  H: Float64Array,
  n: number,
  signal?: AbortSignal,
): Promise<Float64Array> {
  if (pool.threads === 0) return inverseCholeskyUpperWasm(pool, H, n)
  const held = { region: hessianRegion(pool, H, n) }
  try {
    await factorParallel(pool, held, n, signal)
    return upperFactor(pool, held.region, n, new Float64Array(n * n))
  } finally {
    pool.arena.release(held.region)
  }
}

/**
 * The four steps of inverseCholeskyUpperParallel on `held.region`, which ends up holding the lower factor
 * (the Gram step moves it to a fresh region): the caller releases whatever `held.region` is, even on failure.
 */
async function factorParallel(
  pool: WorkerPool,
  held: { region: Region },
  n: number,
  signal?: AbortSignal,
): Promise<void> {
  await choleskyParallel(pool, held.region.ptr, n, 'H', signal)
  await invertLowerParallel(pool, held.region.ptr, n, signal) // L⁻¹
  held.region = await lowerGramParallel(pool, held.region, n, signal) // H⁻¹ = L⁻ᵀL⁻¹
  await choleskyParallel(pool, held.region.ptr, n, 'inverse', signal)
}

/**
 * Float32Array.from(inverseCholeskyUpperParallel(pool, H, n)) (same bits) for an H that `fill` writes
 * straight into kernel memory (an n×n f64 view, row-major), the factor rounded to f32 on its way out. For
 * a 7B model's down_proj (n = 11008) this saves GPTQ a JS copy of H (925 MiB) and the f64 factor (925 MiB).
 * With no worker threads the steps run on this thread.
 */
export async function inverseCholeskyUpperF32(
  pool: WorkerPool,
  n: number,
  fill: (H: Float64Array) => void,
  signal?: AbortSignal,
): Promise<Float32Array> {
  requireDimension('n', n)
  const held = { region: allocMatrix(pool, n * n * 8, `a ${n}×${n} Hessian`) }
  try {
    fill(pool.arena.f64(held.region, 0, n * n))
    if (pool.threads > 0) await factorParallel(pool, held, n, signal)
    else factorHere(pool, held.region, n)
    return upperFactor(pool, held.region, n, new Float32Array(n * n))
  } finally {
    pool.arena.release(held.region)
  }
}
