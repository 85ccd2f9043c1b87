// The kernels spread across workers: matmul (split by output columns), attention (split by heads), and the
// row-wise RMSNorm and element-wise SiLU·up of the Llama block (split by rows: on a long calibration pass
// they are tens of MB, and inline on the main thread they left the workers idle). Splitting never changes a
// value: every output element sees the same operations whichever range computes it.

import type { KernelCall, WorkerPool } from '../pool/worker-pool'
import type { KernelExports } from '../../../kernels/host/exports'

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

/** Parts to split a product of `multiplyAdds` into: small products are cheaper than a round trip to a worker. */
function productParts(pool: WorkerPool, multiplyAdds: number): number {
  return multiplyAdds < 1 << 18 ? 1 : Math.max(1, pool.threads)
}

/** The kernel call for columns [n0, n1) of y[T, N] = x[T, K] · w[N, K]ᵀ (+ b), one worker's share. */
export function matmulCall(
  x: number,
  w: number,
  y: number,
  T: number,
  K: number,
  N: number,
  n0: number,
  n1: number,
  bias?: number,
): KernelCall {
  return bias === undefined
    ? ['matmul_nt', x, w, y, T, K, N, n0, n1]
    : ['matmul_nt_bias', x, w, bias, y, T, K, N, n0, n1]
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
  const parts = productParts(pool, T * K * N)
  const calls = ranges(N, parts, 16).map(([n0, n1]) => matmulCall(x, w, y, T, K, N, n0, n1, bias))
  return parallel(pool, calls)
}

/**
 * nll[t] = logsumexp(x[t]·headᵀ) − (x[t]·headᵀ)[targets[t]] for t < T: the output head's logits [T, V]
 * (into `logits`) and their log-softmax loss, split by rows, each worker scoring the rows it multiplied
 * while they are still in its cache (inline on the main thread, the loss left the workers idle).
 */
export function logitsNll(
  pool: WorkerPool,
  x: number,
  head: number,
  logits: number,
  targets: number,
  nll: number,
  T: number,
  K: number,
  V: number,
): Promise<void> {
  const parts = productParts(pool, T * K * V)
  const tasks = ranges(T, parts).map(([t0, t1]) =>
    pool.run([
      ['matmul_nt', x + t0 * K * 4, head, logits + t0 * V * 4, t1 - t0, K, V, 0, V],
      ['log_softmax_nll', logits + t0 * V * 4, targets + t0 * 4, nll + t0 * 8, t1 - t0, V],
    ]),
  )
  return Promise.all(tasks).then(() => undefined)
}

/** One window's causal attention for heads [h0, h1): the attention_causal call, typed by the kernel's signature. */
export function attentionCall(...args: Parameters<KernelExports['attention_causal']>): KernelCall {
  return ['attention_causal', ...args]
}

/** One window's causal attention, its heads split across the workers. */
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
  const calls = ranges(nHeads, parts).map(([h0, h1], i) =>
    attentionCall(q, k, v, out, scratch(i), T, nHeads, nKV, headDim, h0, h1),
  )
  return parallel(pool, calls)
}

/** Below this many values a row-wise or element-wise kernel runs in one call. */
const SPLIT_MIN_VALUES = 1 << 18

/** out[M, H] = RMSNorm(x[M, H]) · w, rows split across the workers when large. */
export function rmsnorm(
  pool: WorkerPool,
  x: number,
  w: number,
  out: number,
  M: number,
  H: number,
  eps: number,
): Promise<void> {
  const parts = M * H < SPLIT_MIN_VALUES ? 1 : Math.max(1, pool.threads)
  const calls: KernelCall[] = ranges(M, parts).map(([r0, r1]) => [
    'rmsnorm',
    x + r0 * H * 4,
    w,
    out + r0 * H * 4,
    r1 - r0,
    H,
    eps,
  ])
  return parallel(pool, calls)
}

/**
 * out[i] = SiLU(g[i]) · u[i] for n values, split across the workers when large, at multiples of 16 values
 * so each range's SIMD lanes hold the elements they would hold in one call.
 */
export function siluMul(pool: WorkerPool, g: number, u: number, out: number, n: number): Promise<void> {
  const parts = n < SPLIT_MIN_VALUES ? 1 : Math.max(1, pool.threads)
  const calls: KernelCall[] = ranges(n, parts, 16).map(([a, b]) => [
    'silu_mul',
    g + a * 4,
    u + a * 4,
    out + a * 4,
    b - a,
  ])
  return parallel(pool, calls)
}
