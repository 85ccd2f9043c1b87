// The WASM versions of the GPTQ/SparseGPT linear algebra: the inverse-Cholesky factor of a Hessian, on
// the kernels of kernels/assembly/linalg.ts. They give the same bits as cholesky.ts (same per-element
// operation order), only faster. The Hessian itself is accumulated by calibration/kernel-hessian.ts.

import { WhittleError } from '../../errors'
import type { Region } from '../../pool/memory-arena'
import type { WorkerPool } from '../../pool/worker-pool'

const MIRROR_BLOCK = 64

/** Kernel memory for a matrix; running out is the arena's typed 'out-of-memory' error, naming `what`. */
function allocMatrix(pool: WorkerPool, bytes: number, what: string): Region {
  return pool.arena.alloc(bytes, what)
}

function requireDimension(name: string, v: number): void {
  if (!Number.isSafeInteger(v) || v <= 0)
    throw new WhittleError('validation', null, `${name} = ${v} is not a positive integer`)
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
    return upperFactor(pool, region, n)
  } finally {
    pool.arena.release(region)
  }
}
