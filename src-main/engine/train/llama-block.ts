// One Llama decoder block, forward and backward, over a pass of nb windows of T tokens in kernel memory.
// The forward keeps every intermediate the backward needs in this runner's buffers; with activation
// checkpointing the trainer calls it once without gradients (only the block's output matters) and once
// more, during the backward, to rebuild the intermediates of that one block.
//
// Forward (per row; rope and attention per window, positions restarting at 0):
//   h1 = rmsnorm(x, attn_norm); q, k, v = h1·Wᵀ (+b); rope(q), rope(k); att = attention(q, k, v)
//   x2 = x + att·Woᵀ; h2 = rmsnorm(x2, ffn_norm); g = h2·Wgᵀ, u = h2·Wuᵀ; a = silu(g)·u
//   out = x2 + a·Wdᵀ
// Backward, with dx holding ∂L/∂out on entry and ∂L/∂x on return (norms, biases, embedding frozen):
//   dWd += dxᵀ·a; da = dx·Wd; (dg, du) = silu_mul_backward; dWg += dgᵀ·h2; dWu += duᵀ·h2
//   dh2 = dg·Wg + du·Wu; dx += rmsnorm_backward(x2, dh2)                  (now ∂L/∂x2)
//   dWo += dxᵀ·att; datt = dx·Wo; (dq, dk, dv) = attention backward; rope⁻¹ on dq, dk
//   dW{q,k,v} += d{q,k,v}ᵀ·h1; dh1 = dq·Wq + dk·Wk + dv·Wv; dx += rmsnorm_backward(x, dh1)
// Buffers are reused where a value is dead: da overwrites a, datt overwrites att, dg/du overwrite g/u.

import type { ModelArchitecture } from '../arch/types'
import type { ArenaTensor } from '../pool/arena-tensors'
import { TensorScope } from '../forward/block-context'
import { attention, matmul } from '../forward/parallel-ops'
import type { KernelExports } from '../../../kernels/host/exports'
import { attentionScratch } from '../../../kernels/reference/attention'
import { attentionBackwardScratch } from '../../../kernels/reference/backward-attention'
import { ropeTable } from '../../../kernels/reference/rope'
import type { WorkerPool } from '../pool/worker-pool'
import { attentionBackward, matmulNN, matmulTNAcc } from './parallel-grad'
import type { LlamaLinear, TrainLayer } from './llama-weights'

/**
 * What an adapter (LoRA) adds to the block's Linears. forward runs after y = x·Wᵀ (+ b); weightGrads
 * where W's gradient is taken (x is still the Linear's input, dy its output gradient); inputGrad right
 * after dx (+)= dy·W, adding the adapter's share of ∂L/∂x. Calls for one Linear come in that order.
 */
export interface LinearHooks {
  /**
   * Optional, before the Linears reading x run (once per shared input: 'q' for q/k/v, 'o', 'gate' for
   * gate/up, 'down'): may change x in place, e.g. quantization-aware training's activation quantization;
   * the weight gradients then see the changed x, and ∂L/∂x passes through unchanged (straight-through)
   * unless inputGrad changes it: for 'o' and 'down' the dx it receives is that Linear's alone, so a hook
   * that scaled x (CoFi's gates, compress/structure/cofi-hooks.ts) may scale ∂L/∂x there in place.
   */
  input?(role: LlamaLinear, x: ArenaTensor, M: number): void
  forward(role: LlamaLinear, x: ArenaTensor, y: ArenaTensor, M: number): Promise<void>
  weightGrads(role: LlamaLinear, dy: ArenaTensor, x: ArenaTensor, M: number): Promise<void>
  inputGrad(role: LlamaLinear, dx: ArenaTensor, M: number): Promise<void>
  /**
   * Optional, for 'o' and 'down' only, whose forward hook may scale their output before the residual add
   * (CoFi's hidden-dimension gates): called first in that Linear's backward with dOut = ∂L/∂(sub-layer
   * output after the hook), read-only, and y = the Linear's own output x·Wᵀ (+ b), recomputed; it must
   * leave ∂L/∂y in y, which the Linear's backward then uses while the residual path keeps dOut.
   */
  outputGrad?(role: 'o' | 'down', dOut: ArenaTensor, y: ArenaTensor, M: number): Promise<void> | void
}

/** f32 of attention scratch per worker in a block runner: the forward and the backward kernel share it. */
export function blockAttentionScratch(T: number): number {
  return Math.max(attentionScratch(T), attentionBackwardScratch(T))
}

/** f32 values one token needs in a block runner (activations and their gradients). */
export function blockFloatsPerToken(a: ModelArchitecture): number {
  const H = a.hiddenSize,
    qDim = a.heads * a.headDim,
    kvDim = a.kvHeads * a.headDim,
    F = a.intermediateSize
  // x, h1, x2, h2, dh: 5H; q, att, dq: 3 qDim; k, v, dk, dv: 4 kvDim; g, u, a: 3F
  return 5 * H + 3 * qDim + 4 * kvDim + 3 * F
}

export class LlamaBlockRunner extends TensorScope {
  private readonly k: KernelExports
  readonly x: ArenaTensor
  private readonly h1: ArenaTensor
  private readonly q: ArenaTensor
  private readonly kk: ArenaTensor
  private readonly v: ArenaTensor
  private readonly att: ArenaTensor
  private readonly x2: ArenaTensor
  private readonly h2: ArenaTensor
  private readonly g: ArenaTensor
  private readonly u: ArenaTensor
  private readonly a: ArenaTensor
  private readonly dh: ArenaTensor
  private readonly dq: ArenaTensor
  private readonly dk: ArenaTensor
  private readonly dv: ArenaTensor
  private readonly cos: ArenaTensor
  private readonly sin: ArenaTensor
  private readonly scratch: ArenaTensor
  /** f32 of scratch per worker (the attention backward's need; the forward's T fits in it). */
  private readonly scratchStride: number
  private readonly H: number
  private readonly qDim: number
  private readonly kvDim: number
  private readonly F: number
  private readonly eps: number

  constructor(
    pool: WorkerPool,
    private readonly arch: ModelArchitecture,
    readonly T: number,
    readonly maxWindows: number,
  ) {
    super(pool)
    this.k = pool.kernels
    const a = arch
    this.H = a.hiddenSize
    this.qDim = a.heads * a.headDim
    this.kvDim = a.kvHeads * a.headDim
    this.F = a.intermediateSize
    this.eps = a.normEps ?? 1e-5
    const M = T * maxWindows
    try {
      const rows = (w: number): ArenaTensor => this.alloc(M * w)
      this.x = rows(this.H)
      this.h1 = rows(this.H)
      this.x2 = rows(this.H)
      this.h2 = rows(this.H)
      this.dh = rows(this.H)
      this.q = rows(this.qDim)
      this.att = rows(this.qDim)
      this.dq = rows(this.qDim)
      this.kk = rows(this.kvDim)
      this.v = rows(this.kvDim)
      this.dk = rows(this.kvDim)
      this.dv = rows(this.kvDim)
      this.g = rows(this.F)
      this.u = rows(this.F)
      this.a = rows(this.F)
      const table = ropeTable(T, a.headDim, a.ropeTheta ?? 10000)
      this.cos = this.alloc(table.cos.length)
      this.sin = this.alloc(table.sin.length)
      this.cos.view().set(table.cos)
      this.sin.view().set(table.sin)
      this.scratchStride = blockAttentionScratch(T)
      this.scratch = this.alloc(Math.max(1, pool.threads) * this.scratchStride)
    } catch (e) {
      this.free()
      throw e
    }
  }

  private rope(ptr: number, heads: number, backward: boolean): void {
    const hd = this.arch.headDim
    const gguf = this.arch.ropeLayout === 'gguf'
    if (backward)
      (gguf ? this.k.rope_interleaved_backward : this.k.rope_half_backward)(
        ptr,
        this.cos.ptr,
        this.sin.ptr,
        this.T,
        heads,
        hd,
      )
    else (gguf ? this.k.rope_interleaved : this.k.rope_half)(ptr, this.cos.ptr, this.sin.ptr, this.T, heads, hd)
  }

  private linear(
    x: ArenaTensor,
    w: TrainLayer['linear'][LlamaLinear],
    y: ArenaTensor,
    M: number,
    K: number,
    N: number,
  ): Promise<void> {
    return matmul(this.pool, x.ptr, w.w.ptr, y.ptr, M, K, N, w.b?.ptr)
  }

  /**
   * Runs the block over the first nb windows of `x`. With `output`, the block's output (x2 + MLP) is
   * left in `x` and every other intermediate stays, so backward() may follow once `x` holds the block's
   * input again; without, only the intermediates are computed.
   */
  async forward(w: TrainLayer, nb: number, output: boolean, hooks: LinearHooks | null = null): Promise<void> {
    const { k, T, H, qDim, kvDim, F } = this
    const a = this.arch
    const M = nb * T
    const L = w.linear
    k.rmsnorm(this.x.ptr, w.attnNorm.w.ptr, this.h1.ptr, M, H, this.eps)
    hooks?.input?.('q', this.h1, M)
    await Promise.all([
      this.linear(this.h1, L.q, this.q, M, H, qDim),
      this.linear(this.h1, L.k, this.kk, M, H, kvDim),
      this.linear(this.h1, L.v, this.v, M, H, kvDim),
    ])
    if (hooks) {
      await hooks.forward('q', this.h1, this.q, M)
      await hooks.forward('k', this.h1, this.kk, M)
      await hooks.forward('v', this.h1, this.v, M)
    }
    for (let b = 0; b < nb; b++) {
      this.rope(this.q.at(b * T * qDim), a.heads, false)
      this.rope(this.kk.at(b * T * kvDim), a.kvHeads, false)
      await attention(
        this.pool,
        this.q.at(b * T * qDim),
        this.kk.at(b * T * kvDim),
        this.v.at(b * T * kvDim),
        this.att.at(b * T * qDim),
        (part) => this.scratch.at(part * this.scratchStride),
        T,
        a.heads,
        a.kvHeads,
        a.headDim,
      )
    }
    hooks?.input?.('o', this.att, M)
    await this.linear(this.att, L.o, this.x2, M, qDim, H)
    await hooks?.forward('o', this.att, this.x2, M)
    k.add_inplace(this.x2.ptr, this.x.ptr, M * H)
    k.rmsnorm(this.x2.ptr, w.ffnNorm.w.ptr, this.h2.ptr, M, H, this.eps)
    hooks?.input?.('gate', this.h2, M)
    await Promise.all([this.linear(this.h2, L.gate, this.g, M, H, F), this.linear(this.h2, L.up, this.u, M, H, F)])
    if (hooks) {
      await hooks.forward('gate', this.h2, this.g, M)
      await hooks.forward('up', this.h2, this.u, M)
    }
    k.silu_mul(this.g.ptr, this.u.ptr, this.a.ptr, M * F)
    // Before the early return: the backward's weight gradient of down reads a as down saw it.
    hooks?.input?.('down', this.a, M)
    if (!output) return
    await this.linear(this.a, L.down, this.x, M, F, H)
    await hooks?.forward('down', this.a, this.x, M)
    k.add_inplace(this.x.ptr, this.x2.ptr, M * H)
  }

  /**
   * After forward(w, nb, false) on the same input: dx [nb·T, H] holds ∂L/∂output and receives ∂L/∂input;
   * the Linears' weight gradients are ADDED to grads (a Linear absent from grads is frozen).
   */
  async backward(
    w: TrainLayer,
    grads: Partial<Record<LlamaLinear, ArenaTensor>>,
    dx: ArenaTensor,
    nb: number,
    hooks: LinearHooks | null = null,
  ): Promise<void> {
    const { k, pool, T, H, qDim, kvDim, F } = this
    const arch = this.arch
    const M = nb * T
    const L = w.linear
    // MLP
    const dW = (dy: ArenaTensor, x: ArenaTensor, g: ArenaTensor | undefined, N: number, K: number): Promise<void> =>
      g ? matmulTNAcc(pool, dy.ptr, x.ptr, g.ptr, M, N, K) : Promise.resolve()
    // dh is free until dh2: it holds down's own output gradient when a hook scales its output.
    let dyDown = dx
    if (hooks?.outputGrad) {
      await this.linear(this.a, L.down, this.dh, M, F, H)
      await hooks.outputGrad('down', dx, this.dh, M)
      dyDown = this.dh
    }
    await dW(dyDown, this.a, grads.down, H, F)
    await hooks?.weightGrads('down', dyDown, this.a, M)
    await matmulNN(pool, dyDown.ptr, L.down.w.ptr, this.a.ptr, M, H, F) // da
    await hooks?.inputGrad('down', this.a, M)
    k.silu_mul_backward(this.g.ptr, this.u.ptr, this.a.ptr, this.g.ptr, this.u.ptr, M * F) // dg, du
    await Promise.all([dW(this.g, this.h2, grads.gate, F, H), dW(this.u, this.h2, grads.up, F, H)])
    if (hooks) {
      await hooks.weightGrads('gate', this.g, this.h2, M)
      await hooks.weightGrads('up', this.u, this.h2, M)
    }
    await matmulNN(pool, this.g.ptr, L.gate.w.ptr, this.dh.ptr, M, F, H)
    await hooks?.inputGrad('gate', this.dh, M)
    await matmulNN(pool, this.u.ptr, L.up.w.ptr, this.dh.ptr, M, F, H, true)
    await hooks?.inputGrad('up', this.dh, M)
    k.rmsnorm_backward(this.x2.ptr, w.ffnNorm.w.ptr, this.dh.ptr, dx.ptr, M, H, this.eps)
    // Attention
    // dh is free again until dh1.
    let dyO = dx
    if (hooks?.outputGrad) {
      await this.linear(this.att, L.o, this.dh, M, qDim, H)
      await hooks.outputGrad('o', dx, this.dh, M)
      dyO = this.dh
    }
    await dW(dyO, this.att, grads.o, H, qDim)
    await hooks?.weightGrads('o', dyO, this.att, M)
    await matmulNN(pool, dyO.ptr, L.o.w.ptr, this.att.ptr, M, H, qDim) // datt
    await hooks?.inputGrad('o', this.att, M)
    this.dk.view().fill(0, 0, M * kvDim)
    this.dv.view().fill(0, 0, M * kvDim)
    for (let b = 0; b < nb; b++) {
      const qo = b * T * qDim,
        kvo = b * T * kvDim
      await attentionBackward(
        pool,
        this.q.at(qo),
        this.kk.at(kvo),
        this.v.at(kvo),
        this.att.at(qo),
        this.dq.at(qo),
        this.dk.at(kvo),
        this.dv.at(kvo),
        (part) => this.scratch.at(part * this.scratchStride),
        T,
        arch.heads,
        arch.kvHeads,
        arch.headDim,
      )
      this.rope(this.dq.at(qo), arch.heads, true)
      this.rope(this.dk.at(kvo), arch.kvHeads, true)
    }
    await Promise.all([
      dW(this.dq, this.h1, grads.q, qDim, H),
      dW(this.dk, this.h1, grads.k, kvDim, H),
      dW(this.dv, this.h1, grads.v, kvDim, H),
    ])
    if (hooks) {
      await hooks.weightGrads('q', this.dq, this.h1, M)
      await hooks.weightGrads('k', this.dk, this.h1, M)
      await hooks.weightGrads('v', this.dv, this.h1, M)
    }
    await matmulNN(pool, this.dq.ptr, L.q.w.ptr, this.dh.ptr, M, qDim, H)
    await hooks?.inputGrad('q', this.dh, M)
    await matmulNN(pool, this.dk.ptr, L.k.w.ptr, this.dh.ptr, M, kvDim, H, true)
    await hooks?.inputGrad('k', this.dh, M)
    await matmulNN(pool, this.dv.ptr, L.v.w.ptr, this.dh.ptr, M, kvDim, H, true)
    await hooks?.inputGrad('v', this.dh, M)
    k.rmsnorm_backward(this.x.ptr, w.attnNorm.w.ptr, this.dh.ptr, dx.ptr, M, H, this.eps)
  }
}
