// The forward pass of a SliceGPT-sliced Llama (arch/sliced-llama.ts): each block reads a residual of its
// own width, its Linears are narrower along the residual, and two shortcut matrices carry the residual
// from the block's input basis to its MLP basis and on to its output basis:
//
//   x_mid = x · Q_attn + o_proj(attention(RMSN(x)))        x_out = x_mid · Q_mlp + down_proj(SwiGLU(RMSN(x_mid)))
//
// RMSN divides by the original hidden size D, not by the narrower width d (SliceGPT's RMSN): the rmsnorm
// kernel over d values computes the same with its scale times √(D/d) and its epsilon times D/d. The
// unsliced Llama block (llama-forward.ts) is untouched by any of this.

import type { LoadedModel } from '../model/loaded-model'
import type { WorkerPool } from '../pool/worker-pool'
import { shortcutName, type ShortcutKind, type SlicedWidths } from '../arch/sliced-llama'
import { tensorName } from '../arch'
import { WhittleError } from '../errors'
import type { ArenaTensor } from '../pool/arena-tensors'
import type { Affine, BlockContext, TensorScope } from './block-context'
import { DecoderForward, type BlockPass } from './decoder-forward'
import { transpose, type WeightLoader } from './weight-loader'
import type { StreamWidths } from './sliced-stream'
import {
  LLAMA_LINEARS,
  attentionBuffers,
  llamaAttention,
  llamaMlp,
  mlpBuffers,
  ropeRotation,
  type LlamaLinear,
} from './llama-sublayers'

interface SlicedLayer {
  attnNorm: Affine
  ffnNorm: Affine
  linear: Record<LlamaLinear, Affine>
  /** The shortcut matrices as Linears [out, in] (stored [in, out]; transposed on load). */
  attnShortcut: ArenaTensor
  mlpShortcut: ArenaTensor
  /** This layer's MLP width, read off gate_proj (structured pruning may leave layers different). */
  F: number
}

export class SlicedLlamaForward extends DecoderForward<SlicedLayer> {
  private finalNorm: Affine | null = null
  private readonly slicing: SlicedWidths

  private constructor(pool: WorkerPool, model: LoadedModel) {
    super(pool, model, 'llama')
    const s = model.arch.slicing
    if (!s || s.dims.length !== 2 * model.arch.layers + 1)
      throw new WhittleError('config', model.files.path, 'the sliced forward pass needs the widths of every layer')
    this.slicing = s
  }

  static create(pool: WorkerPool, model: LoadedModel): Promise<SlicedLlamaForward> {
    return DecoderForward.opened(new SlicedLlamaForward(pool, model))
  }

  private width(point: number): number {
    return this.slicing.dims[point]
  }

  /** RMSN over `width` values dividing by the hidden size: the kernel's scale factor and epsilon. */
  private normAt(width: number): { scale: number; eps: number } {
    const D = this.arch.hiddenSize
    return { scale: Math.sqrt(D / width), eps: (this.arch.normEps ?? 1e-5) * (D / width) }
  }

  private async scaledNorm(
    loader: WeightLoader,
    layer: number | null,
    role: 'attn_norm' | 'ffn_norm' | 'final_norm',
    width: number,
  ): Promise<Affine> {
    const norm = await loader.norm(layer, role, width, false)
    const { scale } = this.normAt(width)
    const w = norm.w.view()
    for (let i = 0; i < w.length; i++) w[i] *= scale
    return norm
  }

  protected async init(): Promise<void> {
    const L = this.arch.layers
    this.finalNorm = await this.scaledNorm(this.globals, null, 'final_norm', this.width(2 * L))
  }

  protected override streamWidths(layer: number): StreamWidths {
    return { input: this.width(2 * layer), output: this.width(2 * layer + 2) }
  }

  protected override async embedTokens(tokens: Int32Array, _T: number): Promise<Float32Array> {
    const H = this.arch.hiddenSize,
      d = this.width(0)
    const rows = await this.tokenRows(tokens, d)
    const out = new Float32Array(tokens.length * H)
    for (let i = 0; i < tokens.length; i++) out.set(rows.subarray(i * d, (i + 1) * d), i * H)
    return out
  }

  private async shortcut(
    loader: WeightLoader,
    layer: number,
    kind: ShortcutKind,
    din: number,
    dout: number,
  ): Promise<ArenaTensor> {
    const q = tensorName(this.arch, layer, 'q')
    const name = q ? shortcutName(q, kind) : null
    if (!name || !this.arch.places[name])
      throw new WhittleError(
        'not-found',
        this.model.files.path,
        `no ${kind}_shortcut_Q in layer ${layer}; cannot run the sliced model`,
      )
    const e = this.model.entry(name)
    loader.requireShape(e, [din, dout])
    return loader.tensor(e, (src, dst) => transpose(src, dst, din, dout))
  }

  protected async loadLayer(layer: number, loader: WeightLoader): Promise<SlicedLayer> {
    const a = this.arch
    const qDim = a.heads * a.headDim,
      kvDim = a.kvHeads * a.headDim,
      F = loader.entry(layer, 'gate').shape[0]
    const da = this.width(2 * layer),
      dm = this.width(2 * layer + 1),
      dn = this.width(2 * layer + 2)
    const shapes: Record<LlamaLinear, [number, number]> = {
      q: [qDim, da],
      k: [kvDim, da],
      v: [kvDim, da],
      o: [dm, qDim],
      gate: [F, dm],
      up: [F, dm],
      down: [dn, F],
    }
    const linear = {} as Record<LlamaLinear, Affine>
    for (const role of LLAMA_LINEARS) linear[role] = await loader.linear(layer, role, ...shapes[role])
    return {
      attnNorm: await this.scaledNorm(loader, layer, 'attn_norm', da),
      ffnNorm: await this.scaledNorm(loader, layer, 'ffn_norm', dm),
      linear,
      attnShortcut: await this.shortcut(loader, layer, 'attn', da, dm),
      mlpShortcut: await this.shortcut(loader, layer, 'mlp', dm, dn),
      F,
    }
  }

  /** llamaAttention and llamaMlp wait for held reads before they rewrite an observed buffer. */
  protected override holdsObservedInputs(): boolean {
    return true
  }

  /** Activation bytes one token needs inside a block at most (the unsliced block's, an upper bound). */
  bytesPerToken(): number {
    const a = this.arch
    return 4 * (5 * a.hiddenSize + 2 * a.heads * a.headDim + 2 * a.kvHeads * a.headDim + 2 * a.intermediateSize)
  }

  protected blockPass(ctx: BlockContext, w: SlicedLayer): BlockPass {
    const a = this.arch
    const F = w.F
    const shape = { heads: a.heads, kvHeads: a.kvHeads, headDim: a.headDim }
    const layer = ctx.layer
    const da = this.width(2 * layer),
      dm = this.width(2 * layer + 1),
      dn = this.width(2 * layer + 2)
    const normA = { w: w.attnNorm, eps: this.normAt(da).eps },
      normM = { w: w.ffnNorm, eps: this.normAt(dm).eps }
    const k = this.k
    const att = attentionBuffers(ctx, shape, Math.max(da, dm), Math.max(dm, dn))
    const mlp = { ...mlpBuffers(ctx, F), h: att.h, out: att.out }
    const mid = ctx.rows(dm)
    const rotate = ropeRotation(ctx, k, a.headDim, a.ropeTheta ?? 10000, false)
    const { linear } = w
    return async (x: ArenaTensor, nb: number): Promise<void> => {
      const M = nb * ctx.T
      await llamaAttention(ctx, att, linear, normA, shape, rotate, x, nb, da, dm)
      // The residual crosses into the MLP's basis through the shortcut matrix: mid = x·Q_attn + attention.
      await ctx.linear(x, { w: w.attnShortcut, b: undefined }, mid, M, da, dm)
      k.add_inplace(mid.ptr, att.out.ptr, M * dm)
      ctx.slicedResidual('mlp', mid, M, dm)
      await llamaMlp(ctx, mlp, linear, normM, mid, M, dm, F, dn)
      if (ctx.inputsOnly) return
      // x is free now: the output, [M, dn] packed, goes where the input was.
      await ctx.linear(mid, { w: w.mlpShortcut, b: undefined }, x, M, dm, dn)
      k.add_inplace(x.ptr, mlp.out.ptr, M * dn)
      ctx.slicedResidual('out', x, M, dn)
    }
  }

  protected async headInput(x: ArenaTensor, M: number, scope: TensorScope): Promise<{ h: ArenaTensor; width: number }> {
    const H = this.arch.hiddenSize,
      d = this.width(2 * this.arch.layers)
    const packed = scope.alloc(M * d)
    const src = x.view(),
      dst = packed.view()
    for (let r = 0; r < M; r++) dst.set(src.subarray(r * H, r * H + d), r * d)
    const h = scope.alloc(M * d)
    this.k.rmsnorm(packed.ptr, this.finalNorm!.w.ptr, h.ptr, M, d, this.normAt(d).eps)
    return { h, width: d }
  }
}
