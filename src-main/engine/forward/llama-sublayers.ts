// The two halves of a Llama block, shared by the plain block (llama-forward.ts) and SliceGPT's sliced one
// (sliced-llama-forward.ts), which differ only in widths and in what they add the halves' outputs to:
// - attention: RMSNorm → q/k/v → RoPE attention → o_proj;
// - MLP: RMSNorm → gate/up → SiLU(gate)·up → down_proj.
// Each writes its output into `out` (width outW), leaving the residual addition to the caller.

import { ropeTable } from '../../../kernels/reference/rope'
import type { KernelExports } from '../../../kernels/host/exports'
import type { ArenaTensor } from '../pool/arena-tensors'
import type { Affine, BlockContext, RotateWindow } from './block-context'
import type { KernelCall } from '../pool/worker-pool'

export const LLAMA_LINEARS = ['q', 'k', 'v', 'o', 'gate', 'up', 'down'] as const
export type LlamaLinear = (typeof LLAMA_LINEARS)[number]

export interface AttentionShape {
  heads: number
  kvHeads: number
  headDim: number
}

/** RoPE's tables in kernel memory for `ctx`'s window length, and the call that rotates q or k with them. */
export function ropeRotation(
  ctx: BlockContext,
  k: KernelExports,
  headDim: number,
  theta: number,
  interleaved: boolean,
): RotateWindow {
  const T = ctx.T
  const table = ropeTable(T, headDim, theta)
  const cos = ctx.alloc(table.cos.length),
    sin = ctx.alloc(table.sin.length)
  cos.view().set(table.cos)
  sin.view().set(table.sin)
  const name = interleaved ? 'rope_interleaved' : 'rope_half'
  const rope = k[name].bind(k)
  return Object.assign((ptr: number, heads: number) => rope(ptr, cos.ptr, sin.ptr, T, heads, headDim), {
    calls: (ptr: number, heads: number): KernelCall[] => [[name, ptr, cos.ptr, sin.ptr, T, heads, headDim]],
  })
}

/** The attention half's buffers for inputs up to `maxIn` wide and outputs up to `maxOut` wide. */
export function attentionBuffers(ctx: BlockContext, s: AttentionShape, maxIn: number, maxOut: number) {
  const qDim = s.heads * s.headDim,
    kvDim = s.kvHeads * s.headDim
  return {
    h: ctx.rows(maxIn),
    q: ctx.rows(qDim),
    k: ctx.rows(kvDim),
    v: ctx.rows(kvDim),
    att: ctx.rows(qDim),
    out: ctx.rows(maxOut),
  }
}

export type AttentionBuffers = ReturnType<typeof attentionBuffers>

/** out = o_proj(attention(RMSNorm(x))), x [M, inW], out [M, outW]; nb windows of ctx.T tokens. */
export async function llamaAttention(
  ctx: BlockContext,
  b: AttentionBuffers,
  linear: Record<LlamaLinear, Affine>,
  norm: { w: Affine; eps: number },
  s: AttentionShape,
  rotate: RotateWindow,
  x: ArenaTensor,
  nb: number,
  inW: number,
  outW: number,
): Promise<void> {
  const M = nb * ctx.T
  const qDim = s.heads * s.headDim,
    kvDim = s.kvHeads * s.headDim
  await ctx.rmsnorm(x, norm.w, b.h, M, inW, norm.eps)
  for (const r of ['q', 'k', 'v'] as const) ctx.observe(r, b.h, M, inW)
  await Promise.all([
    ctx.linear(b.h, linear.q, b.q, M, inW, qDim),
    ctx.linear(b.h, linear.k, b.k, M, inW, kvDim),
    ctx.linear(b.h, linear.v, b.v, M, inW, kvDim),
  ])
  ctx.quantizeOutputs(
    [
      [b.q, qDim],
      [b.k, kvDim],
      [b.v, kvDim],
    ],
    M,
  )
  await ctx.attention(b.q, b.k, b.v, b.att, nb, s.heads, s.kvHeads, s.headDim, rotate)
  ctx.attentionOutput(b.att, M, qDim)
  ctx.observe('o', b.att, M, qDim)
  await ctx.linear(b.att, linear.o, b.out, M, qDim, outW)
}

/** The MLP half's buffers for `F` neurons (h is shared with the attention half's). */
export function mlpBuffers(ctx: BlockContext, F: number) {
  return { g: ctx.rows(F), u: ctx.rows(F) }
}

/**
 * out = down(SiLU(gate(RMSNorm(x))) · up(RMSNorm(x))), x [M, inW], out [M, outW], h scratch of inW. When
 * the hooks want only the Linears' inputs (ctx.inputsOnly), down's input is the last thing computed.
 */
export async function llamaMlp(
  ctx: BlockContext,
  b: ReturnType<typeof mlpBuffers> & { h: ArenaTensor; out: ArenaTensor },
  linear: Record<LlamaLinear, Affine>,
  norm: { w: Affine; eps: number },
  x: ArenaTensor,
  M: number,
  inW: number,
  F: number,
  outW: number,
): Promise<void> {
  // h (q/k/v's input) and att (o's) may still be read for the hooks: h is about to be written.
  await ctx.afterHeldReads()
  await ctx.rmsnorm(x, norm.w, b.h, M, inW, norm.eps)
  ctx.observe('gate', b.h, M, inW)
  ctx.observe('up', b.h, M, inW)
  await Promise.all([ctx.linear(b.h, linear.gate, b.g, M, inW, F), ctx.linear(b.h, linear.up, b.u, M, inW, F)])
  await ctx.siluMulInPlace(b.g, b.u, M * F)
  ctx.observe('down', b.g, M, F)
  if (ctx.inputsOnly) return
  await ctx.linear(b.g, linear.down, b.out, M, F, outW)
}
