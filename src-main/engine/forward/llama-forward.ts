// The CPU forward pass of the Llama family (llama, mistral, qwen2; GQA, RoPE in HF or GGUF layout,
// RMSNorm, SwiGLU, tied or untied lm_head) on the WASM kernels. The layer-major loop, residency and the
// output head are DecoderForward's; this file is the block.

import { layerIntermediateSize } from '../arch/types'
import type { LoadedModel } from '../model/loaded-model'
import type { WorkerPool } from '../pool/worker-pool'
import { ropeTable } from '../../../kernels/reference/rope'
import type { ArenaTensor } from '../pool/arena-tensors'
import type { Affine, BlockContext, TensorScope } from './block-context'
import { DecoderForward, type BlockPass } from './decoder-forward'
import type { WeightLoader } from './weight-loader'

export type { ForwardHooks, LinearRole } from './causal-lm'

const LINEARS = ['q', 'k', 'v', 'o', 'gate', 'up', 'down'] as const
type LlamaLinear = (typeof LINEARS)[number]

interface LlamaLayer {
  attnNorm: Affine
  ffnNorm: Affine
  linear: Record<LlamaLinear, Affine>
}

export class LlamaForward extends DecoderForward<LlamaLayer> {
  private finalNorm: Affine | null = null

  private constructor(pool: WorkerPool, model: LoadedModel) {
    super(pool, model, 'llama')
  }

  static create(pool: WorkerPool, model: LoadedModel): Promise<LlamaForward> {
    return DecoderForward.opened(new LlamaForward(pool, model))
  }

  protected async init(): Promise<void> {
    this.finalNorm = await this.globals.norm(null, 'final_norm', this.arch.hiddenSize, false)
  }

  protected async loadLayer(layer: number, loader: WeightLoader): Promise<LlamaLayer> {
    const a = this.arch
    const H = a.hiddenSize,
      qDim = a.heads * a.headDim,
      kvDim = a.kvHeads * a.headDim,
      F = layerIntermediateSize(a, layer)
    const shapes: Record<LlamaLinear, [number, number]> = {
      q: [qDim, H],
      k: [kvDim, H],
      v: [kvDim, H],
      o: [H, qDim],
      gate: [F, H],
      up: [F, H],
      down: [H, F],
    }
    const linear = {} as Record<LlamaLinear, Affine>
    for (const role of LINEARS) linear[role] = await loader.linear(layer, role, ...shapes[role])
    return {
      attnNorm: await loader.norm(layer, 'attn_norm', H, false),
      ffnNorm: await loader.norm(layer, 'ffn_norm', H, false),
      linear,
    }
  }

  /** Activation bytes one token needs inside a block (x, h, q, k, v, attn, o, gate, up), f32. */
  bytesPerToken(): number {
    const a = this.arch
    return 4 * (4 * a.hiddenSize + 2 * a.heads * a.headDim + 2 * a.kvHeads * a.headDim + 2 * a.intermediateSize)
  }

  protected blockPass(ctx: BlockContext, w: LlamaLayer): BlockPass {
    const a = this.arch
    const H = a.hiddenSize,
      nH = a.heads,
      nKV = a.kvHeads,
      hd = a.headDim,
      F = layerIntermediateSize(a, ctx.layer)
    const qDim = nH * hd,
      kvDim = nKV * hd
    const eps = a.normEps ?? 1e-5
    const T = ctx.T
    const k = this.k
    const h = ctx.rows(H),
      q = ctx.rows(qDim),
      kk = ctx.rows(kvDim),
      v = ctx.rows(kvDim)
    const att = ctx.rows(qDim),
      o = ctx.rows(H),
      g = ctx.rows(F),
      u = ctx.rows(F)
    const table = ropeTable(T, hd, a.ropeTheta ?? 10000)
    const cos = ctx.alloc(table.cos.length),
      sin = ctx.alloc(table.sin.length)
    cos.view().set(table.cos)
    sin.view().set(table.sin)
    const rope = a.ropeLayout === 'gguf' ? k.rope_interleaved.bind(k) : k.rope_half.bind(k)
    const rotate = (ptr: number, heads: number): void => rope(ptr, cos.ptr, sin.ptr, T, heads, hd)
    const { linear } = w
    return async (x: ArenaTensor, nb: number): Promise<void> => {
      const M = nb * T
      k.rmsnorm(x.ptr, w.attnNorm.w.ptr, h.ptr, M, H, eps)
      for (const r of ['q', 'k', 'v'] as const) ctx.observe(r, h, M, H)
      await Promise.all([
        ctx.linear(h, linear.q, q, M, H, qDim),
        ctx.linear(h, linear.k, kk, M, H, kvDim),
        ctx.linear(h, linear.v, v, M, H, kvDim),
      ])
      ctx.quantizeOutputs(
        [
          [q, qDim],
          [kk, kvDim],
          [v, kvDim],
        ],
        M,
      )
      await ctx.attention(q, kk, v, att, nb, nH, nKV, hd, rotate)
      ctx.attentionOutput(att, M, qDim)
      ctx.observe('o', att, M, qDim)
      await ctx.linear(att, linear.o, o, M, qDim, H)
      k.add_inplace(x.ptr, o.ptr, M * H)
      k.rmsnorm(x.ptr, w.ffnNorm.w.ptr, h.ptr, M, H, eps)
      ctx.observe('gate', h, M, H)
      ctx.observe('up', h, M, H)
      await Promise.all([ctx.linear(h, linear.gate, g, M, H, F), ctx.linear(h, linear.up, u, M, H, F)])
      k.silu_mul(g.ptr, u.ptr, g.ptr, M * F)
      ctx.observe('down', g, M, F)
      await ctx.linear(g, linear.down, o, M, F, H)
      k.add_inplace(x.ptr, o.ptr, M * H)
    }
  }

  protected async headInput(x: ArenaTensor, M: number, scope: TensorScope): Promise<{ h: ArenaTensor; width: number }> {
    const H = this.arch.hiddenSize
    const h = scope.alloc(M * H)
    this.k.rmsnorm(x.ptr, this.finalNorm!.w.ptr, h.ptr, M, H, this.arch.normEps ?? 1e-5)
    return { h, width: H }
  }
}
