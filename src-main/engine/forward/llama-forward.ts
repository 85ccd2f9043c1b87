// The CPU forward pass of the Llama family (llama, mistral, qwen2; GQA, RoPE in HF or GGUF layout,
// RMSNorm, SwiGLU, tied or untied lm_head) on the WASM kernels. The layer-major loop, residency and the
// output head are DecoderForward's; this file is the block.

import { layerIntermediateSize } from '../arch/types'
import type { LoadedModel } from '../model/loaded-model'
import type { WorkerPool } from '../pool/worker-pool'
import type { ArenaTensor } from '../pool/arena-tensors'
import type { Affine, BlockContext, TensorScope } from './block-context'
import { DecoderForward, type BlockPass } from './decoder-forward'
import type { WeightLoader } from './weight-loader'
import {
  llamaBlockByWindows,
  windowLanes,
  windowsPerCacheChunk,
  type LlamaBlockWeights,
  type LlamaLanePlan,
} from './llama-window-lanes'
import {
  LLAMA_LINEARS,
  attentionBuffers,
  llamaAttention,
  llamaMlp,
  mlpBuffers,
  ropeRotation,
  type LlamaLinear,
} from './llama-sublayers'

export type { ForwardHooks, LinearRole } from './causal-lm'

type LlamaLayer = LlamaBlockWeights

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
    for (const role of LLAMA_LINEARS) linear[role] = await loader.linear(layer, role, ...shapes[role])
    return {
      attnNorm: await loader.norm(layer, 'attn_norm', H, false),
      ffnNorm: await loader.norm(layer, 'ffn_norm', H, false),
      linear,
    }
  }

  /** llamaAttention and llamaMlp wait for held reads before they rewrite an observed buffer. */
  protected override holdsObservedInputs(): boolean {
    return true
  }

  /** Activation bytes one token needs inside a block (x, h, q, k, v, attn, o, gate, up), f32. */
  bytesPerToken(): number {
    const a = this.arch
    return 4 * (4 * a.hiddenSize + 2 * a.heads * a.headDim + 2 * a.kvHeads * a.headDim + 2 * a.intermediateSize)
  }

  protected blockPass(ctx: BlockContext, w: LlamaLayer): BlockPass {
    const a = this.arch
    const H = a.hiddenSize,
      F = layerIntermediateSize(a, ctx.layer)
    const shape = { heads: a.heads, kvHeads: a.kvHeads, headDim: a.headDim }
    const eps = a.normEps ?? 1e-5
    const k = this.k
    const att = attentionBuffers(ctx, shape, H, H)
    const mlp = { ...mlpBuffers(ctx, F), h: att.h, out: att.out }
    const rotate = ropeRotation(ctx, k, a.headDim, a.ropeTheta ?? 10000, a.ropeLayout === 'gguf')
    const { linear } = w
    const byWindows: LlamaLanePlan = {
      ctx,
      buffers: { ...att, ...mlp },
      weights: w,
      shape,
      rotate,
      dims: { H, F, eps },
      windowsPerChunk: windowsPerCacheChunk(this.bytesPerToken() * ctx.T),
    }
    return async (x: ArenaTensor, nb: number): Promise<void> => {
      const lanes = windowLanes(ctx, this.pool.threads, nb, rotate)
      if (lanes > 0) return llamaBlockByWindows(byWindows, x, nb, lanes)
      const M = nb * ctx.T
      await llamaAttention(ctx, att, linear, { w: w.attnNorm, eps }, shape, rotate, x, nb, H, H)
      k.add_inplace(x.ptr, att.out.ptr, M * H)
      await llamaMlp(ctx, mlp, linear, { w: w.ffnNorm, eps }, x, M, H, F, H)
      if (!ctx.inputsOnly) k.add_inplace(x.ptr, mlp.out.ptr, M * H)
    }
  }

  protected async headInput(x: ArenaTensor, M: number, scope: TensorScope): Promise<{ h: ArenaTensor; width: number }> {
    const H = this.arch.hiddenSize
    const h = scope.alloc(M * H)
    this.k.rmsnorm(x.ptr, this.finalNorm!.w.ptr, h.ptr, M, H, this.arch.normEps ?? 1e-5)
    return { h, width: H }
  }
}
