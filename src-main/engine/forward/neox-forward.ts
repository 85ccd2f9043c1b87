// GPT-NeoX (HF GPTNeoXForCausalLM: Pythia and kin): fused query_key_value stored per head as
// [q_h, k_h, v_h] (a [heads, 3, headDim] view of its rows) and reordered once at load into [q; k; v];
// rotate_half rotary on the first rotary_ndims = headDim·rotary_pct dims of each head only; LayerNorm
// blocks with the parallel residual x + attn(ln1(x)) + mlp(ln2(x)) or the sequential one; exact-erf GELU;
// biased Linears; an untied output head (embed_out).

import { ropeTable } from '../../../kernels/reference/rope'
import { configPath } from '../arch/declared-values'
import { WhittleError } from '../errors'
import type { LoadedModel } from '../model/loaded-model'
import type { WorkerPool } from '../pool/worker-pool'
import type { BlockContext, RotateWindow } from './block-context'
import { DecoderForward } from './decoder-forward'
import { activationOf, configFlag } from './layernorm-block'
import { LayerNormForward, type LayerNormFamily } from './layernorm-forward'

/** GPTNeoXConfig's default share of each head that rotates. */
const DEFAULT_ROTARY_PCT = 0.25

/** rotary_pct (partial_rotary_factor in newer configs, possibly inside rope_parameters). */
function rotaryFraction(config: Record<string, unknown> | null, file: string): number {
  const nested = config?.rope_parameters
  const fromNested =
    nested && typeof nested === 'object' ? (nested as Record<string, unknown>).partial_rotary_factor : undefined
  const v = config?.rotary_pct ?? config?.partial_rotary_factor ?? fromNested ?? DEFAULT_ROTARY_PCT
  if (typeof v !== 'number' || !(v >= 0 && v <= 1))
    throw new WhittleError('config', file, `rotary_pct must be a number in [0, 1], found ${JSON.stringify(v)}`)
  return v
}

/** Only plain rotary is implemented; scaled variants would silently give other numbers. */
function refuseRopeScaling(config: Record<string, unknown> | null, file: string): void {
  const scaling = config?.rope_scaling
  const nested = config?.rope_parameters
  const type = nested && typeof nested === 'object' ? (nested as Record<string, unknown>).rope_type : undefined
  if ((scaling !== undefined && scaling !== null) || (type !== undefined && type !== 'default')) {
    throw new WhittleError(
      'unsupported',
      file,
      'scaled rotary embeddings (rope_scaling) are not supported by the forward pass',
    )
  }
}

/**
 * Rotary on the first `rotaryDims` of each head, positions 0 … T−1. The rope kernel rotates whole heads,
 * so a partial rotation packs those dims into a [T, heads, rotaryDims] buffer, rotates that as heads of
 * width rotaryDims (the pairs (i, i + rotaryDims/2) are exactly NeoX's rotate_half), and copies it back.
 */
function partialRotary(
  pool: WorkerPool,
  headDim: number,
  rotaryDims: number,
  base: number,
  maxHeads: number,
): (ctx: BlockContext) => RotateWindow {
  return (ctx) => {
    const T = ctx.T
    const k = pool.kernels
    const table = ropeTable(T, rotaryDims, base)
    const cos = ctx.alloc(table.cos.length),
      sin = ctx.alloc(table.sin.length)
    cos.view().set(table.cos)
    sin.view().set(table.sin)
    if (rotaryDims === headDim) return (ptr, heads) => k.rope_half(ptr, cos.ptr, sin.ptr, T, heads, headDim)
    const packed = ctx.alloc(T * maxHeads * rotaryDims)
    return (ptr, heads) => {
      const x = new Float32Array(pool.memory.buffer, ptr, T * heads * headDim)
      const p = packed.view()
      for (let r = 0; r < T * heads; r++) p.set(x.subarray(r * headDim, r * headDim + rotaryDims), r * rotaryDims)
      k.rope_half(packed.ptr, cos.ptr, sin.ptr, T, heads, rotaryDims)
      for (let r = 0; r < T * heads; r++) x.set(p.subarray(r * rotaryDims, (r + 1) * rotaryDims), r * headDim)
    }
  }
}

function neoxFamily(pool: WorkerPool, model: LoadedModel): LayerNormFamily {
  const a = model.arch
  const config = model.files.config
  const file = configPath(model.files)
  refuseRopeScaling(config, file)
  const hd = a.headDim,
    qDim = a.heads * hd,
    kvDim = a.kvHeads * hd
  if (a.kvHeads !== a.heads)
    throw new WhittleError(
      'config',
      file,
      `GPT-NeoX has one key/value head per query head; the geometry says ${a.heads} and ${a.kvHeads}`,
    )
  // HF: rotary_ndims = int(head_size · rotary_pct)
  const rotaryDims = Math.floor(hd * rotaryFraction(config, file))
  if (rotaryDims % 2 !== 0)
    throw new WhittleError(
      'unsupported',
      file,
      `an odd number of rotary dims per head (${rotaryDims}) cannot be rotated in pairs`,
    )
  // Row r of [q; k; v] (part j, head h, dim d) is stored at row h·3·hd + j·hd + d.
  const sourceRow = (r: number): number => {
    const j = r < qDim ? 0 : r < qDim + kvDim ? 1 : 2
    const within = r - (j === 0 ? 0 : qDim + (j - 1) * kvDim)
    return Math.floor(within / hd) * 3 * hd + j * hd + (within % hd)
  }
  return {
    block: {
      eps: a.normEps ?? 1e-5,
      activation: activationOf(config, 'hidden_act', 'gelu', file),
      residual: configFlag(config, 'use_parallel_residual', true, file) ? 'parallel' : 'pre',
      rotary: rotaryDims > 0 ? partialRotary(pool, hd, rotaryDims, a.ropeTheta ?? 10000, a.heads) : undefined,
    },
    qkv: { sourceRow },
    finalNorm: true,
  }
}

export class NeoxForward extends LayerNormForward {
  private constructor(pool: WorkerPool, model: LoadedModel) {
    super(pool, model, 'gpt-neox', neoxFamily(pool, model))
  }

  static create(pool: WorkerPool, model: LoadedModel): Promise<NeoxForward> {
    return DecoderForward.opened(new NeoxForward(pool, model))
  }
}
