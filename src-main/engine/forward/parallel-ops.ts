// The two kernels worth spreading across workers: matmul (split by output columns) and attention
// (split by heads). Everything else in a block is linear in the activations and runs inline.

import type { KernelCall, WorkerPool } from '../pool/worker-pool'

function ranges(total: number, parts: number, align = 1): [number, number][] {
  const out: [number, number][] = []
  const step = Math.ceil(total / parts / align) * align
  for (let a = 0; a < total; a += step) out.push([a, Math.min(total, a + step)])
  return out
}

function parallel(pool: WorkerPool, calls: KernelCall[]): Promise<void> {
  if (pool.threads <= 1 || calls.length === 1) return pool.run(calls)
  return Promise.all(calls.map((c) => pool.run([c]))).then(() => undefined)
}

/** y[T, N] = x[T, K] · w[N, K]ᵀ (+ b). */
export function matmul(
  pool: WorkerPool,
  x: number,
  w: number,
  y: number,
  T: number,
  K: number,
  N: number,
  bias?: number,
): Promise<void> {
  // Small products are cheaper than a round trip to a worker.
  const parts = T * K * N < 1 << 18 ? 1 : Math.max(1, pool.threads)
  const calls: KernelCall[] = ranges(N, parts, 16).map(([n0, n1]) =>
    bias === undefined ? ['matmul_nt', x, w, y, T, K, N, n0, n1] : ['matmul_nt_bias', x, w, bias, y, T, K, N, n0, n1],
  )
  return parallel(pool, calls)
}

export function attention(
  pool: WorkerPool,
  q: number,
  k: number,
  v: number,
  out: number,
  scratch: (part: number) => number,
  T: number,
  nHeads: number,
  nKV: number,
  headDim: number,
): Promise<void> {
  const parts = Math.max(1, Math.min(pool.threads, nHeads))
  const calls: KernelCall[] = ranges(nHeads, parts).map(([h0, h1], i) => [
    'attention_causal',
    q,
    k,
    v,
    out,
    scratch(i),
    T,
    nHeads,
    nKV,
    headDim,
    h0,
    h1,
  ])
  return parallel(pool, calls)
}
