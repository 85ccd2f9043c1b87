// The WASM versions of the GPTQ/SparseGPT linear algebra: the inverse-Cholesky factor of a Hessian, on
// the kernels of kernels/assembly/linalg.ts, by cholesky.ts's route (one factorization of JHJ and one
// triangular inverse). They give the same bits as cholesky.ts (same per-element operation order), only faster. The Hessian itself is accumulated by calibration/kernel-hessian.ts.
// inverseCholeskyUpperParallel splits each O(n³) step by rows across the pool's workers (the kernels'
// step entry points); since each element's operations keep their order, that too gives the same bits.

import { WhittleError } from '../../errors'
import type { Region } from '../../pool/memory-arena'
import type { KernelCall, WorkerPool } from '../../pool/worker-pool'
import { reversedUpper } from './cholesky'

/** Kernel memory for a matrix; running out is the arena's typed 'out-of-memory' error, naming `what`. */
function allocMatrix(pool: WorkerPool, bytes: number, what: string): Region {
  return pool.arena.alloc(bytes, what)
}

function requireDimension(name: string, v: number): void {
  if (!Number.isSafeInteger(v) || v <= 0)
    throw new WhittleError('validation', null, `${name} = ${v} is not a positive integer`)
}

/** The failure for pivot `failed` − 1 of JHJ: column n − failed of H itself. */
function notPositiveDefinite(failed: number, n: number): WhittleError {
  return new WhittleError(
    'validation',
    null,
    `matrix is not positive definite at column ${n - failed}; raise the damping`,
  )
}

/**
 * JHJ (cholesky.ts: H with the order of its rows and columns reversed) in a fresh n×n region of kernel
 * memory, checking H's size first.
 */
function hessianRegion(pool: WorkerPool, H: Float64Array, n: number): Region {
  requireDimension('n', n)
  if (H.length < n * n)
    throw new WhittleError('validation', null, `the Hessian holds ${H.length} values, ${n}×${n} needs ${n * n}`)
  const region = allocMatrix(pool, n * n * 8, `a ${n}×${n} Hessian`)
  pool.arena.f64(region, 0, n * n).set(H.subarray(0, n * n))
  reverseOrder(pool, region, n)
  return region
}

/** M → JMJ in place: reversing a row-major matrix's array reverses its rows and its columns. */
function reverseOrder(pool: WorkerPool, region: Region, n: number): void {
  pool.arena.f64(region, 0, n * n).reverse()
}

/**
 * U = J·L⁻¹·J from the L⁻¹ the kernels leave in the region's lower triangle, into `U` (cholesky.ts
 * reversedUpper): an f32 destination rounds each value once, the same values as Float32Array.from of the
 * f64 factor.
 */
function upperFactor<T extends Float64Array | Float32Array>(pool: WorkerPool, region: Region, n: number, U: T): T {
  return reversedUpper(pool.arena.f64(region, 0, n * n), n, U)
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

/** The two steps of inverseCholeskyUpperWasm on JHJ, in place in `region`, on this thread. */
function factorHere(pool: WorkerPool, region: Region, n: number): void {
  const k = pool.kernels
  const failed = k.cholesky_lower(region.ptr, n)
  if (failed !== 0) throw notPositiveDefinite(failed, n)
  k.invert_lower(region.ptr, n) // L⁻¹
}

/**
 * inverseCholeskyUpperWasm (same bits) on one of the pool's workers, so the main thread stays free: for
 * the 5632 inputs of a 1.1B model's down_proj these two calls take seconds. Cancelling the job
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
    if (first !== 0) throw notPositiveDefinite(first, n)
    await pool.call([['invert_lower', p, n]], { signal })
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
async function choleskyParallel(pool: WorkerPool, ptr: number, n: number, signal?: AbortSignal) {
  const failed = await panelLoop(
    pool,
    n,
    (p0) => ['cholesky_panel', ptr, n, p0],
    (p0, r0, r1) => ['cholesky_trailing', ptr, n, p0, r0, r1],
    () => (row) => n - row,
    signal,
  )
  if (failed !== 0) throw notPositiveDefinite(failed, n)
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
 * inverseCholeskyUpperWasm (same bits) with each step split by rows across the pool's workers: the
 * Cholesky factorization and the triangular inverse panel by panel (one round trip per panel). Cancelling stops the workers mid-call, as
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
 * The two steps of inverseCholeskyUpperParallel on JHJ in `held.region`, which ends up holding L⁻¹: the
 * caller releases the region, even on failure.
 */
async function factorParallel(
  pool: WorkerPool,
  held: { region: Region },
  n: number,
  signal?: AbortSignal,
): Promise<void> {
  await choleskyParallel(pool, held.region.ptr, n, signal)
  await invertLowerParallel(pool, held.region.ptr, n, signal) // L⁻¹
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
    reverseOrder(pool, held.region, n)
    if (pool.threads > 0) await factorParallel(pool, held, n, signal)
    else factorHere(pool, held.region, n)
    return upperFactor(pool, held.region, n, new Float32Array(n * n))
  } finally {
    pool.arena.release(held.region)
  }
}
