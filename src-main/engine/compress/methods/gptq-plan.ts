// GPTQ's plan of a Hessian (compress/methods/gptq.ts): dead inputs, the act-order permutation, damping and
// the upper Cholesky factor of the inverse, shared by every Linear that reads the same input (GPTQ,
// SparseGPT, GPTVQ, PB-LLM). On a worker pool the damped H is written straight into kernel memory and the
// factor comes back as f32 (issue #15: no JS copy of a 7B down_proj's 925 MiB H, no f64 factor).

import { isOutOfMemory, WhittleError } from '../../errors'
import { collectGarbage } from '../../pool/collect-garbage'
import type { WorkerPool } from '../../pool/worker-pool'
import type { GroupContext } from './method'
import { inverseCholeskyUpper } from '../linalg/cholesky'
import { inverseCholeskyUpperF32, inverseCholeskyUpperWasm } from '../linalg/kernels'

/** What the plan depends on besides H (GptqParams extends it). */
export interface HessianPlanParams {
  damp: number
  actOrder: boolean
}

/** What GPTQ derives from the Hessian alone: the same for every Linear of a group with equal damp and act-order. */
export interface GptqHessianPlan {
  cols: number
  /** Input channels with H_ii = 0: their weights are zeroed. */
  dead: Int32Array
  /** Column order (identity without act-order). */
  perm: Int32Array
  /** Upper Cholesky factor of (permuted, damped H)⁻¹, cols × cols; f32 as the reference holds it. */
  U: Float32Array
}

/** What planHessian derives from H before the factorization. */
interface HessianOrder {
  /** Input channels with H_ii = 0 (their diagonal becomes 1 before damping). */
  dead: Int32Array
  /** Column order (identity without act-order). */
  perm: Int32Array
  /** Added to the diagonal of the permuted H: damp · mean of its diagonal. */
  damp: number
}

/** Dead columns, the column order and the damping from H's diagonal (H is only read). */
function orderHessian(Hin: Float64Array, cols: number, p: HessianPlanParams): HessianOrder {
  if (!Number.isSafeInteger(cols) || cols <= 0)
    throw new WhittleError('validation', null, `gptq: ${cols} columns is not a positive integer`)
  if (Hin.length !== cols * cols)
    throw new WhittleError(
      'validation',
      null,
      `gptq: the Hessian holds ${Hin.length} values, ${cols}×${cols} needs ${cols * cols}`,
    )
  const diag = new Float64Array(cols)
  const deadList: number[] = []
  for (let i = 0; i < cols; i++) {
    const d = Hin[i * cols + i]
    if (d === 0) deadList.push(i)
    diag[i] = d === 0 ? 1 : d
  }
  // Column order: identity, or by descending Hessian diagonal (stable, as torch.argsort is not
  // guaranteed to be; ties are rare in real data).
  const perm = Int32Array.from({ length: cols }, (_, i) => i)
  if (p.actOrder) perm.sort((a, b) => diag[b] - diag[a] || a - b)
  // Summed in the permuted order, as over the diagonal of the permuted matrix.
  let meanDiag = 0
  for (let i = 0; i < cols; i++) meanDiag += diag[perm[i]]
  return { dead: Int32Array.from(deadList), perm, damp: (p.damp * meanDiag) / cols }
}

/** Writes the permuted, damped H (dead diagonals set to 1 first) into `dst`, cols × cols: what is factored. */
function writeDampedHessian(Hin: Float64Array, cols: number, order: HessianOrder, dst: Float64Array): void {
  const { perm, damp } = order
  if (perm.every((c, i) => c === i)) dst.set(Hin.subarray(0, cols * cols))
  else
    for (let i = 0; i < cols; i++) {
      const from = perm[i] * cols
      const row = i * cols
      for (let j = 0; j < cols; j++) dst[row + j] = Hin[from + perm[j]]
    }
  for (let i = 0; i < cols; i++) {
    const d = dst[i * cols + i]
    dst[i * cols + i] = (d === 0 ? 1 : d) + damp
  }
}

/** The damped, permuted H as a fresh array (the TS paths factor a copy). */
function dampedHessian(Hin: Float64Array, cols: number, order: HessianOrder): Float64Array {
  const Hp = new Float64Array(cols * cols)
  writeDampedHessian(Hin, cols, order, Hp)
  return Hp
}

/**
 * Dead columns, act-order permutation, damping and Hinv from H = Σ XᵀX (f64, cols × cols, not modified).
 * With a pool the factorization runs on the WASM kernels (same bits), unless kernel memory is too small.
 * Synchronous, on this thread: planHessianAsync is the one for real layers.
 */
export function planHessian(Hin: Float64Array, cols: number, p: HessianPlanParams, pool?: WorkerPool): GptqHessianPlan {
  const order = orderHessian(Hin, cols, p)
  const Hp = dampedHessian(Hin, cols, order)
  let U64: Float64Array
  if (!pool) U64 = inverseCholeskyUpper(Hp, cols)
  else {
    try {
      U64 = inverseCholeskyUpperWasm(pool, Hp, cols)
    } catch (e) {
      // A Hessian too large for kernel memory still quantizes, only slower.
      if (!isOutOfMemory(e)) throw e
      U64 = inverseCholeskyUpper(Hp, cols)
    }
  }
  return { cols, dead: order.dead, perm: order.perm, U: Float32Array.from(U64) }
}

/**
 * planHessian (same result) with the factorization on the pool's workers, split by rows across them: at
 * 5632 columns it is tens of seconds of work, which would otherwise hold the main thread; a cancel stops it.
 * The damped H is written straight into kernel memory and the factor comes back as f32, so besides H the
 * only JS array of this size is the f32 factor (issue #15: a 7B down_proj's copies were 925 + 925 MiB).
 */
export async function planHessianAsync(
  Hin: Float64Array,
  cols: number,
  p: HessianPlanParams,
  pool?: WorkerPool,
): Promise<GptqHessianPlan> {
  if (!pool) return planHessian(Hin, cols, p)
  const order = orderHessian(Hin, cols, p)
  let U: Float32Array
  try {
    U = await inverseCholeskyUpperF32(pool, cols, (dst) => writeDampedHessian(Hin, cols, order, dst))
  } catch (e) {
    if (!isOutOfMemory(e)) throw e
    U = Float32Array.from(inverseCholeskyUpper(dampedHessian(Hin, cols, order), cols))
  }
  return { cols, dead: order.dead, perm: order.perm, U }
}

/**
 * The plan of each of a group's Linears (in ctx.linears' order), one factorization per distinct damp and
 * act-order, all made before any Linear is quantized so that the group's Hessian is let go right after:
 * a 7B down_proj's H is 925 MiB, and held through the column loop it sat beside the 462 MiB factor at
 * the layer's peak (issue #15). Only for methods that need nothing of H but its plan.
 */
export async function planGroupThenDropHessian<P>(
  ctx: GroupContext<P>,
  method: string,
  planParams: (p: P) => HessianPlanParams,
): Promise<GptqHessianPlan[]> {
  let H = ctx.input?.hessian ?? null
  if (!H)
    throw new WhittleError('validation', null, `${method}: layer ${ctx.layer} ${ctx.group} has no calibration Hessian`)
  const plans = new Map<string, GptqHessianPlan>()
  const planned: GptqHessianPlan[] = []
  for (const l of ctx.linears) {
    const pp = planParams(l.params)
    const key = `${pp.damp}|${pp.actOrder}`
    let plan = plans.get(key)
    if (!plan) plans.set(key, (plan = await planHessianAsync(H, l.cols, pp, ctx.pool)))
    planned.push(plan)
  }
  const bytes = H.byteLength
  ctx.input!.hessian = H = null
  collectGarbage(bytes)
  return planned
}
