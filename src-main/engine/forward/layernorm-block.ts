// The decoder block GPT-2, OPT and GPT-NeoX share: LayerNorm with a bias, multi-head attention with
// biased projections (fused q/k/v or separate), an optional rotary step, and a gate-less two-Linear MLP.
// They differ only in where the norms and residual adds sit:
//   pre:      x += attn(ln1(x));          x += mlp(ln2(x))          (GPT-2, OPT, NeoX sequential)
//   parallel: x += attn(ln1(x)) + mlp(ln2(x))                       (NeoX use_parallel_residual)
//   post:     x = ln1(x + attn(x));       x = ln2(x + mlp(x))       (OPT with do_layer_norm_before false)

import type { KernelExports } from '../../../kernels/host/exports'
import type { ModelArchitecture } from '../arch/types'
import { WhittleError } from '../errors'
import type { ArenaTensor } from '../pool/arena-tensors'
import type { Affine, BlockContext, RotateWindow } from './block-context'
import type { BlockPass } from './decoder-forward'
import type { WeightLoader } from './weight-loader'

export type Residual = 'pre' | 'parallel' | 'post'
export type Activation = 'gelu_tanh' | 'gelu_erf' | 'relu'

/** HF ACT2FN names → the kernel computing them (gelu_new, gelu_fast and gelu_pytorch_tanh are one formula). */
const ACTIVATIONS: Readonly<Record<string, Activation>> = {
  gelu: 'gelu_erf',
  gelu_new: 'gelu_tanh',
  gelu_fast: 'gelu_tanh',
  gelu_pytorch_tanh: 'gelu_tanh',
  relu: 'relu',
}

/** The activation a config names under `key` (absent: `fallback`); one Whittle has no kernel for is refused. */
export function activationOf(
  config: Record<string, unknown> | null,
  key: string,
  fallback: string,
  file: string,
): Activation {
  const name = config?.[key] ?? fallback
  if (typeof name !== 'string')
    throw new WhittleError('config', file, `${key} must be a string, found ${JSON.stringify(name)}`)
  const kernel = Object.hasOwn(ACTIVATIONS, name) ? ACTIVATIONS[name] : undefined
  if (!kernel)
    throw new WhittleError(
      'unsupported',
      file,
      `${key} '${name}' is not an activation the forward pass supports (${Object.keys(ACTIVATIONS).join(', ')})`,
    )
  return kernel
}

/** A boolean config value, `fallback` when absent or null. */
export function configFlag(
  config: Record<string, unknown> | null,
  key: string,
  fallback: boolean,
  file: string,
): boolean {
  const v = config?.[key] ?? fallback
  if (typeof v !== 'boolean')
    throw new WhittleError('config', file, `${key} must be true or false, found ${JSON.stringify(v)}`)
  return v
}

export interface LayerNormBlockWeights {
  attnNorm: Affine
  ffnNorm: Affine
  /** One projection with rows ordered [q; k; v], or three. */
  qkv: { fused: Affine } | { q: Affine; k: Affine; v: Affine }
  o: Affine
  fc1: Affine
  fc2: Affine
}

export interface LayerNormBlockOptions {
  eps: number
  activation: Activation
  residual: Residual
  /** Prepares the rotary step for windows of T tokens in ctx (positions 0 … T−1), if the family has one. */
  rotary?: (ctx: BlockContext) => RotateWindow
}

/**
 * How a family stores q/k/v: three Linears, or one fused weight whose rows are already in [q; k; v] order
 * (GPT-2's c_attn once transposed), or a fused weight to reorder: row r of [q; k; v] is stored row
 * `sourceRow(r)` (NeoX keeps [q_h, k_h, v_h] per head).
 */
export type QkvLayout = 'separate' | 'fused' | { sourceRow: (r: number) => number }

/** Loads one layer for the LayerNorm block. */
export async function loadLayerNormBlock(
  loader: WeightLoader,
  layer: number,
  a: ModelArchitecture,
  layout: QkvLayout,
): Promise<LayerNormBlockWeights> {
  const H = a.hiddenSize,
    qDim = a.heads * a.headDim,
    kvDim = a.kvHeads * a.headDim,
    F = a.intermediateSize
  const qkv =
    layout === 'separate'
      ? {
          q: await loader.linear(layer, 'q', qDim, H),
          k: await loader.linear(layer, 'k', kvDim, H),
          v: await loader.linear(layer, 'v', kvDim, H),
        }
      : {
          fused: await loader.linear(
            layer,
            'qkv',
            qDim + 2 * kvDim,
            H,
            layout === 'fused' ? undefined : layout.sourceRow,
          ),
        }
  return {
    attnNorm: await loader.norm(layer, 'attn_norm', H, true),
    ffnNorm: await loader.norm(layer, 'ffn_norm', H, true),
    qkv,
    o: await loader.linear(layer, 'o', H, qDim),
    fc1: await loader.linear(layer, 'fc1', F, H),
    fc2: await loader.linear(layer, 'fc2', H, F),
  }
}

/** Activation bytes one token needs inside the block (x, h, q, k, v, attn, o, fc1 output), f32. */
export function layerNormBlockBytesPerToken(a: ModelArchitecture): number {
  return 4 * (3 * a.hiddenSize + 2 * a.heads * a.headDim + 2 * a.kvHeads * a.headDim + a.intermediateSize)
}

export function layerNormBlockPass(
  ctx: BlockContext,
  k: KernelExports,
  a: ModelArchitecture,
  w: LayerNormBlockWeights,
  opt: LayerNormBlockOptions,
): BlockPass {
  const H = a.hiddenSize,
    nH = a.heads,
    nKV = a.kvHeads,
    hd = a.headDim,
    F = a.intermediateSize
  const qDim = nH * hd,
    kvDim = nKV * hd
  const T = ctx.T
  const h = ctx.rows(H),
    q = ctx.rows(qDim),
    kk = ctx.rows(kvDim),
    v = ctx.rows(kvDim)
  const att = ctx.rows(qDim),
    o = ctx.rows(H),
    g = ctx.rows(F)
  const rotate = opt.rotary?.(ctx)
  const layerNorm = (x: ArenaTensor, n: Affine, out: ArenaTensor, M: number): void =>
    k.layernorm(x.ptr, n.w.ptr, n.b!.ptr, out.ptr, M, H, opt.eps)
  const { qkv } = w

  /** o = attention sublayer of `src` (already normed, or x itself post-LN). */
  const attention = async (src: ArenaTensor, M: number, nb: number): Promise<void> => {
    if ('fused' in qkv) {
      ctx.observe('qkv', src, M, H)
      await ctx.fusedQkv(src, qkv.fused, q, kk, v, M, H, qDim, kvDim)
    } else {
      for (const r of ['q', 'k', 'v'] as const) ctx.observe(r, src, M, H)
      await Promise.all([
        ctx.linear(src, qkv.q, q, M, H, qDim),
        ctx.linear(src, qkv.k, kk, M, H, kvDim),
        ctx.linear(src, qkv.v, v, M, H, kvDim),
      ])
    }
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
    await ctx.linear(att, w.o, o, M, qDim, H)
  }
  /** o = MLP sublayer of `src`. */
  const mlp = async (src: ArenaTensor, M: number): Promise<void> => {
    ctx.observe('fc1', src, M, H)
    await ctx.linear(src, w.fc1, g, M, H, F)
    k[opt.activation](g.ptr, g.ptr, M * F)
    ctx.observe('fc2', g, M, F)
    await ctx.linear(g, w.fc2, o, M, F, H)
  }

  return async (x: ArenaTensor, nb: number): Promise<void> => {
    const M = nb * T
    switch (opt.residual) {
      case 'pre':
        layerNorm(x, w.attnNorm, h, M)
        await attention(h, M, nb)
        k.add_inplace(x.ptr, o.ptr, M * H)
        layerNorm(x, w.ffnNorm, h, M)
        await mlp(h, M)
        k.add_inplace(x.ptr, o.ptr, M * H)
        return
      case 'parallel':
        layerNorm(x, w.attnNorm, h, M)
        await attention(h, M, nb)
        // The MLP reads ln2 of the block's input: take it before the attention output joins x.
        layerNorm(x, w.ffnNorm, h, M)
        k.add_inplace(x.ptr, o.ptr, M * H)
        await mlp(h, M)
        k.add_inplace(x.ptr, o.ptr, M * H)
        return
      case 'post':
        await attention(x, M, nb)
        k.add_inplace(x.ptr, o.ptr, M * H)
        layerNorm(x, w.attnNorm, x, M)
        await mlp(x, M)
        k.add_inplace(x.ptr, o.ptr, M * H)
        layerNorm(x, w.ffnNorm, x, M)
        return
    }
  }
}
