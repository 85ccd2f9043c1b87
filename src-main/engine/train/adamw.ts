// AdamW as torch.optim.AdamW computes it (decoupled weight decay, bias correction), learning-rate
// schedules as transformers' get_*_schedule_with_warmup define them, and clipping by global norm as
// torch.nn.utils.clip_grad_norm_ does. Weights and gradients are f32 in kernel memory; the moments m and v
// live there too (one f32 each per weight).
//
// Per weight, at step t (from 1), in f32 as PyTorch's single-tensor path:
//   w ← w·(1 − lr·wd)                     (decoupled decay, before the moments)
//   m ← m + (1 − β1)·(g − m)              (exp_avg.lerp_(g, 1 − β1))
//   v ← v·β2 + (1 − β2)·g·g
//   w ← w − (lr / (1 − β1^t)) · m / (sqrt(v) / sqrt(1 − β2^t) + eps)
// A weight whose gradient is always 0 and which starts at 0 (a pruned entry, its gradient masked) keeps
// m = v = 0, an update of exactly 0 / eps = 0, and stays exactly 0, with or without weight decay.

import { WhittleError } from '../errors'
import type { ArenaTensor } from '../pool/arena-tensors'
import { TensorScope } from '../forward/block-context'
import type { WorkerPool } from '../pool/worker-pool'

const f = Math.fround

export interface AdamWSettings {
  beta1: number
  beta2: number
  eps: number
  weightDecay: number
}

export const ADAMW_DEFAULTS: AdamWSettings = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 }

export type ScheduleName = 'constant' | 'linear' | 'cosine'
export const SCHEDULES: readonly ScheduleName[] = ['constant', 'linear', 'cosine']

/**
 * The learning rate for optimizer step `step` (0-based) of `total`: a linear warm-up over `warmup` steps
 * (from 0, as transformers does), then constant, a linear decay to 0, or a half cosine to 0.
 */
export function learningRate(lr: number, schedule: ScheduleName, step: number, total: number, warmup = 0): number {
  if (step < warmup) return lr * (step / Math.max(1, warmup))
  const progress = (step - warmup) / Math.max(1, total - warmup)
  switch (schedule) {
    case 'constant':
      return lr
    case 'linear':
      return lr * Math.max(0, (total - step) / Math.max(1, total - warmup))
    case 'cosine':
      return lr * Math.max(0, 0.5 * (1 + Math.cos(Math.PI * progress)))
  }
}

export interface OptimizedTensor {
  weight: ArenaTensor
  grad: ArenaTensor
}

/** √Σ g² over every gradient (f64). */
export function globalGradNorm(params: readonly OptimizedTensor[]): number {
  let s = 0
  for (const p of params) {
    const g = p.grad.view()
    for (let i = 0; i < g.length; i++) s += g[i] * g[i]
  }
  return Math.sqrt(s)
}

/**
 * Scales every gradient by maxNorm / (norm + 1e-6) when the global norm exceeds maxNorm (torch's
 * clip_grad_norm_). Returns the norm before clipping.
 */
export function clipGradNorm(params: readonly OptimizedTensor[], maxNorm: number): number {
  const norm = globalGradNorm(params)
  if (maxNorm > 0 && norm > maxNorm) {
    const c = f(maxNorm / (norm + 1e-6))
    for (const p of params) {
      const g = p.grad.view()
      for (let i = 0; i < g.length; i++) g[i] = f(g[i] * c)
    }
  }
  return norm
}

export class AdamW {
  private readonly state: TensorScope
  private readonly moments: { m: ArenaTensor; v: ArenaTensor }[]
  private t = 0

  constructor(
    pool: WorkerPool,
    private readonly params: readonly OptimizedTensor[],
    private readonly settings: AdamWSettings,
  ) {
    const { beta1, beta2, eps, weightDecay } = settings
    if (!(beta1 >= 0 && beta1 < 1))
      throw new WhittleError('validation', null, `optimizer beta1 must be in [0, 1) (got ${beta1})`)
    if (!(beta2 >= 0 && beta2 < 1))
      throw new WhittleError('validation', null, `optimizer beta2 must be in [0, 1) (got ${beta2})`)
    if (!(eps > 0) || !Number.isFinite(eps))
      throw new WhittleError('validation', null, `optimizer eps must be a positive number (got ${eps})`)
    if (!(weightDecay >= 0) || !Number.isFinite(weightDecay))
      throw new WhittleError('validation', null, `optimizer weight_decay must be ≥ 0 (got ${weightDecay})`)
    this.state = new TensorScope(pool)
    try {
      this.moments = params.map((p) => {
        const m = this.state.alloc(p.weight.length),
          v = this.state.alloc(p.weight.length)
        m.view().fill(0)
        v.view().fill(0)
        return { m, v }
      })
    } catch (e) {
      this.state.free()
      throw e
    }
  }

  /** Optimizer steps taken. */
  get steps(): number {
    return this.t
  }

  /** Bytes of optimizer state (m and v). */
  get stateBytes(): number {
    return this.moments.reduce((s, x) => s + 4 * (x.m.length + x.v.length), 0)
  }

  /** One update of every weight from its gradient, at learning rate lr. */
  step(lr: number): void {
    this.t++
    const { beta1, beta2, eps, weightDecay } = this.settings
    const bc1 = 1 - beta1 ** this.t,
      bc2 = 1 - beta2 ** this.t
    const stepSize = f(lr / bc1),
      bc2Sqrt = f(Math.sqrt(bc2))
    const decay = f(1 - lr * weightDecay)
    const oneMinusB1 = f(1 - beta1),
      b2 = f(beta2),
      oneMinusB2 = f(1 - beta2),
      eps32 = f(eps)
    this.params.forEach((p, i) => {
      const w = p.weight.view(),
        g = p.grad.view()
      const m = this.moments[i].m.view(),
        v = this.moments[i].v.view()
      for (let j = 0; j < w.length; j++) {
        const gj = g[j]
        let wj = weightDecay !== 0 ? f(w[j] * decay) : w[j]
        const mj = f(m[j] + f(oneMinusB1 * f(gj - m[j])))
        const vj = f(f(v[j] * b2) + f(f(oneMinusB2 * gj) * gj))
        m[j] = mj
        v[j] = vj
        const denom = f(f(f(Math.sqrt(vj)) / bc2Sqrt) + eps32)
        wj = f(wj - f(stepSize * f(mj / denom)))
        w[j] = wj
      }
    })
  }

  free(): void {
    this.state.free()
  }
}
