// The Llama block with whole windows per worker. Where nothing changes the block's inside (no hook but the
// Linear-input ones, no activation quantization), every value in a window's rows depends on that window
// alone: the norms, products, SiLU and residual additions are row by row, attention is within the window.
// So each worker takes its own windows through the block's steps, and the workers meet only where a hook
// must see a Linear's input whole: after q/k/v's input (RMSNorm), o's (attention), gate/up's (the MLP's
// RMSNorm) and down's (SiLU·up). With no such hook, a worker takes its windows through the whole block in
// one task. Op by op (llama-sublayers.ts), a pass of the stories260K block was some 150 tasks with a round
// trip to the main thread between steps, and the workers waited at each.
//
// The bits are those of the op-by-op path: a row range never changes a value (matmul.ts: tiling never
// changes an output's order; norm.ts and activation.ts work row by row or element by element, and the
// SiLU ranges start on whole rows of F values), and attention is the same call per window.
// window-lanes.test.ts holds the two paths to the same per-token losses, layer-inputs.test.ts the
// calibration statistics to their reference.

import type { ArenaTensor } from '../pool/arena-tensors'
import type { KernelCall } from '../pool/worker-pool'
import type { Affine, BlockContext, RotateWindow } from './block-context'
import type { AttentionBuffers, AttentionShape, LlamaLinear } from './llama-sublayers'
import { attentionCall, matmulCall } from './parallel-ops'

export interface LlamaBlockWeights {
  attnNorm: Affine
  ffnNorm: Affine
  linear: Record<LlamaLinear, Affine>
}

export interface LlamaLaneBuffers extends AttentionBuffers {
  g: ArenaTensor
  u: ArenaTensor
}

/**
 * Workers that take whole windows of a pass of nb windows through the block (0: run it op by op). One
 * worker takes them all in one task where op by op would be a round trip to the main thread per step.
 */
export function windowLanes(ctx: BlockContext, threads: number, nb: number, rotate: RotateWindow): number {
  // Inline (no workers), the block runs op by op.
  if (threads === 0 || !ctx.watchesOnlyInputs || !rotate.calls) return 0
  const lanes = Math.min(threads, nb)
  // Windows go whole to a worker: where the shares would differ much (7 windows on 2 workers: 4 and 3),
  // the op-by-op path, which splits each product by columns, keeps the workers more evenly busy.
  return Math.ceil(nb / lanes) * lanes <= nb * 1.125 ? lanes : 0
}

/** y[rows, N] = x[rows, K] · Wᵀ (+ b) for the rows starting at row r0 of x and y. */
function linearCall(
  x: ArenaTensor,
  a: Affine,
  y: ArenaTensor,
  r0: number,
  rows: number,
  K: number,
  N: number,
): KernelCall {
  return matmulCall(x.at(r0 * K), a.w.ptr, y.at(r0 * N), rows, K, N, 0, N, a.b?.ptr)
}

/** Activation bytes a worker's unobserved run takes through the block at a time: about one core's L2. */
const CACHE_CHUNK_BYTES = 2 << 20

/**
 * Windows an unobserved lane takes through the whole block before the next ones, for windows of
 * `windowBytes` activations: as many as fit CACHE_CHUNK_BYTES, or all of the lane's where not even one
 * fits, so that large models still multiply each weight matrix by all its rows at once. stories260K at
 * seqlen 256 takes 2 windows of 0.8 MB: its perplexity ran about 1.05× faster on 1 and 2 workers than
 * with a lane's windows all at once, the activations no longer going out to L3 between steps.
 */
export function windowsPerCacheChunk(windowBytes: number): number {
  return windowBytes <= CACHE_CHUNK_BYTES ? Math.floor(CACHE_CHUNK_BYTES / windowBytes) : Infinity
}

/** What a pass by windows needs of the block: its context, buffers, weights, shapes and RoPE. */
export interface LlamaLanePlan {
  ctx: BlockContext
  buffers: LlamaLaneBuffers
  weights: LlamaBlockWeights
  shape: AttentionShape
  rotate: RotateWindow
  dims: { H: number; F: number; eps: number }
  /** windowsPerCacheChunk of a window's activations. */
  windowsPerChunk: number
}

/**
 * The kernel calls that take windows [w0, w1) of x (T tokens each) through the block, in place, in five
 * segments that end where a hook may look: q/k/v's input h, o's att, gate/up's h, down's g, the output.
 */
export function llamaWindowsSegments(
  p: LlamaLanePlan,
  x: ArenaTensor,
  w0: number,
  w1: number,
  lane: number,
): KernelCall[][] {
  const { ctx, buffers: b, weights: w, shape: s, rotate } = p
  const { H, F, eps } = p.dims
  const T = ctx.T
  const qDim = s.heads * s.headDim,
    kvDim = s.kvHeads * s.headDim
  const r0 = w0 * T,
    rows = (w1 - w0) * T
  const { linear } = w
  const attention: KernelCall[] = [
    linearCall(b.h, linear.q, b.q, r0, rows, H, qDim),
    linearCall(b.h, linear.k, b.k, r0, rows, H, kvDim),
    linearCall(b.h, linear.v, b.v, r0, rows, H, kvDim),
  ]
  const scratch = ctx.attentionScratchAt(lane)
  for (let win = w0; win < w1; win++) {
    const q = b.q.at(win * T * qDim),
      k = b.k.at(win * T * kvDim)
    attention.push(...rotate.calls!(q, s.heads), ...rotate.calls!(k, s.kvHeads))
    const [v, out] = [b.v.at(win * T * kvDim), b.att.at(win * T * qDim)]
    attention.push(attentionCall(q, k, v, out, scratch, T, s.heads, s.kvHeads, s.headDim, 0, s.heads))
  }
  return [
    [['rmsnorm', x.at(r0 * H), w.attnNorm.w.ptr, b.h.at(r0 * H), rows, H, eps]],
    attention,
    [
      linearCall(b.att, linear.o, b.out, r0, rows, qDim, H),
      ['add_inplace', x.at(r0 * H), b.out.at(r0 * H), rows * H],
      ['rmsnorm', x.at(r0 * H), w.ffnNorm.w.ptr, b.h.at(r0 * H), rows, H, eps],
    ],
    [
      linearCall(b.h, linear.gate, b.g, r0, rows, H, F),
      linearCall(b.h, linear.up, b.u, r0, rows, H, F),
      ['silu_mul', b.g.at(r0 * F), b.u.at(r0 * F), b.g.at(r0 * F), rows * F],
    ],
    [linearCall(b.g, linear.down, b.out, r0, rows, F, H), ['add_inplace', x.at(r0 * H), b.out.at(r0 * H), rows * H]],
  ]
}

/**
 * Runs nb windows of x through the block, `lanes` workers each taking a contiguous share of them: in one
 * task each where nothing watches, else segment by segment with the Linear-input hooks between (the
 * segments rewriting h wait for the reads the hooks hold on it).
 */
export async function llamaBlockByWindows(p: LlamaLanePlan, x: ArenaTensor, nb: number, lanes: number): Promise<void> {
  const { ctx, buffers: b } = p
  const { H, F } = p.dims
  const shares: [number, number][] = []
  for (let lane = 0, w0 = 0; lane < lanes; lane++) {
    const w1 = w0 + Math.floor(nb / lanes) + (lane < nb % lanes ? 1 : 0)
    shares.push([w0, w1])
    w0 = w1
  }
  if (ctx.unobserved) {
    // A few windows at a time through the whole block, so that their activations stay in the core's
    // cache from one step to the next (see windowsPerCacheChunk).
    const chunk = p.windowsPerChunk
    await Promise.all(
      shares.map(([w0, w1], lane) => {
        const calls: KernelCall[] = []
        for (let c = w0; c < w1; c += chunk)
          calls.push(...llamaWindowsSegments(p, x, c, Math.min(w1, c + chunk), lane).flat())
        return ctx.run(calls)
      }),
    )
    return
  }
  const segments = shares.map(([w0, w1], lane) => llamaWindowsSegments(p, x, w0, w1, lane))
  const M = nb * ctx.T,
    qDim = p.shape.heads * p.shape.headDim
  const run = (i: number) => Promise.all(segments.map((lane) => ctx.run(lane[i])))
  await run(0)
  for (const r of ['q', 'k', 'v'] as const) ctx.observe(r, b.h, M, H)
  await run(1)
  ctx.observe('o', b.att, M, qDim)
  // Segment 2 rewrites h, which q/k/v's hooks may still be reading.
  await ctx.afterHeldReads()
  await run(2)
  ctx.observe('gate', b.h, M, H)
  ctx.observe('up', b.h, M, H)
  await run(3)
  ctx.observe('down', b.g, M, F)
  if (ctx.inputsOnly) return
  await run(4)
}
