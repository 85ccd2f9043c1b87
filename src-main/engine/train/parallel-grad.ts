// The backward products worth spreading across the pool's workers, each split so that no two workers
// write the same element: dX = dY·W by output columns, dW += dYᵀ·X by weight rows, and the attention
// backward by KV heads (every query head of a group adds into its KV head's dk/dv rows).

import type { KernelCall, WorkerPool } from '../pool/worker-pool'

function ranges(total: number, parts: number, align = 1): [number, number][] {
  const out: [number, number][] = []
  const step = Math.max(align, Math.ceil(total / parts / align) * align)
  for (let a = 0; a < total; a += step) out.push([a, Math.min(total, a + step)])
  return out
}

function parallel(pool: WorkerPool, calls: KernelCall[]): Promise<void> {
  if (pool.threads <= 1 || calls.length === 1) return pool.run(calls)
  return Promise.all(calls.map((c) => pool.run([c]))).then(() => undefined)
}

/** Below this many multiply-adds a product runs as one call (a worker round trip costs more). */
const SPLIT_WORK = 1 << 18

function parts(pool: WorkerPool, work: number): number {
  return work < SPLIT_WORK ? 1 : Math.max(1, pool.threads)
}

/** y[T, K] (+)= x[T, N] · w[N, K]. */
export function matmulNN(
  pool: WorkerPool,
  x: number,
  w: number,
  y: number,
  T: number,
  N: number,
  K: number,
  accumulate = false,
): Promise<void> {
  const acc = accumulate ? 1 : 0
  return parallel(
    pool,
    ranges(K, parts(pool, T * N * K), 8).map(([k0, k1]): KernelCall => ['matmul_nn', x, w, y, T, N, K, k0, k1, acc]),
  )
}

/** dw[N, K] += dy[M, N]ᵀ · x[M, K]. */
export function matmulTNAcc(
  pool: WorkerPool,
  dy: number,
  x: number,
  dw: number,
  M: number,
  N: number,
  K: number,
): Promise<void> {
  return parallel(
    pool,
    ranges(N, parts(pool, M * N * K), 4).map(([n0, n1]): KernelCall => ['matmul_tn_acc', dy, x, dw, M, N, K, n0, n1]),
  )
}

/** One window's attention backward; scratch(part) gives each call attentionBackwardScratch(T) f32 of its own. */
export function attentionBackward(
  pool: WorkerPool,
  q: number,
  k: number,
  v: number,
  dout: number,
  dq: number,
  dk: number,
  dv: number,
  scratch: (part: number) => number,
  T: number,
  nHeads: number,
  nKV: number,
  headDim: number,
): Promise<void> {
  const n = Math.max(1, Math.min(pool.threads, nKV))
  return parallel(
    pool,
    ranges(nKV, n).map(([g0, g1], i): KernelCall => [
      'attention_causal_backward',
      q,
      k,
      v,
      dout,
      dq,
      dk,
      dv,
      scratch(i),
      T,
      nHeads,
      nKV,
      headDim,
      g0,
      g1,
    ]),
  )
}
