// The surface every forward pass offers its callers (perplexity, calibration capture, the probes, the
// compression pipeline), whatever the family behind it, and the names its hooks report Linears by.

import type { InputGroup } from '../../contract/api'
import type { ModelArchitecture } from '../arch/types'

/**
 * A Linear as the hooks name it. The Llama family keeps its own names (q/k/v, o, gate/up/down); OPT has
 * separate q/k/v too; GPT-2's c_attn and NeoX's query_key_value are one fused 'qkv'; the gate-less MLPs
 * of GPT-2, OPT and NeoX report 'fc1' (up) and 'fc2' (down).
 */
export type LinearRole = 'q' | 'k' | 'v' | 'qkv' | 'o' | 'gate' | 'up' | 'down' | 'fc1' | 'fc2'

/**
 * Which input each Linear reads: the attention input (normed hidden state), the attention output, the
 * MLP input, the MLP's inner activation.
 */
export const INPUT_GROUP: Readonly<Record<LinearRole, InputGroup>> = {
  q: 'qkv',
  k: 'qkv',
  v: 'qkv',
  qkv: 'qkv',
  o: 'o',
  gate: 'gate_up',
  up: 'gate_up',
  fc1: 'gate_up',
  down: 'down',
  fc2: 'down',
}

/**
 * The first reader of each input group in every family. Linears of one group see the same tensor, so
 * an observer that wants each input once records it only from these.
 */
export const RECORDING_ROLES: ReadonlySet<LinearRole> = new Set<LinearRole>([
  'q',
  'qkv',
  'o',
  'gate',
  'fc1',
  'down',
  'fc2',
])

/**
 * Offered to a linearInput hook where the block can keep the input for it: the hook may go on reading x
 * in kernel memory (on the workers) after it returns, instead of copying it first.
 */
export interface HeldInput {
  /** x's byte address in the pool's kernel memory. */
  ptr: number
  /** The block writes x again only once `reading` has settled. */
  keepUntil(reading: Promise<unknown>): void
}

/** Observers see each Linear's input as it is computed (calibration capture, activation stats). */
export interface ForwardHooks {
  /** x is [M, K] f32 in kernel memory, valid only during the call unless `held` keeps it longer. */
  linearInput?(layer: number, role: LinearRole, x: Float32Array, M: number, K: number, held?: HeldInput): void
  /** Attention output [M, heads·headDim] before the output projection; may be modified in place (head ablation). */
  attentionOutput?(layer: number, att: Float32Array, M: number): void
  /**
   * One window's keys (after RoPE) and values, each [T, kvHeads·headDim], as attention is about to read
   * them; may be modified in place (KV-cache quantization).
   */
  keysValues?(layer: number, k: Float32Array, v: Float32Array, T: number, kvHeads: number, headDim: number): void
  /**
   * SliceGPT-sliced Llama models only (forward/sliced-llama-forward.ts): the residual stream [M, width] in
   * the block's own basis where it enters the MLP ('mlp') and where it leaves the block ('out').
   */
  slicedResidual?(layer: number, point: 'mlp' | 'out', x: Float32Array, M: number, width: number): void
  /**
   * Only the Linears' inputs are wanted (a calibration pass whose block output is thrown away): `hidden`
   * is left as it was (no copy of it is needed to keep it), and a block may stop after its last Linear
   * input, calling no later hook. The Llama family (SliceGPT-sliced too) skips the down projection and
   * the residual update it feeds.
   */
  inputsOnly?: boolean
}

export interface WindowNllOptions {
  signal?: AbortSignal
  hooks?: ForwardHooks
  onLayer?: (layer: number) => void
}

/**
 * A decoder-only language model run layer-major over a batch of windows. Through block(), hidden states
 * live in JS memory between blocks and kernel memory holds one pass of one block at a time; windowNll keeps
 * a batch in kernel memory throughout where the model is resident and the batch is one pass.
 */
export interface CausalLM {
  readonly arch: ModelArchitecture
  /** Embeddings (with learned positions where the family has them) of B windows of T tokens: [B·T, H]. */
  embed(windows: Int32Array[]): Promise<Float32Array>
  /** Runs decoder block `layer` over hidden states [B·T, H] in place. */
  block(layer: number, hidden: Float32Array, T: number, hooks?: ForwardHooks): Promise<void>
  /** Final norm, output head and per-token NLL of the next token, per window (length T−1 each). */
  nll(hidden: Float32Array, windows: Int32Array[]): Promise<Float64Array[]>
  /** Every window from position 0 through every block; per window the NLL of each next-token prediction. */
  windowNll(windows: Int32Array[], options?: WindowNllOptions): Promise<Float64Array[]>
  /** Windows of T tokens that fit the activation budget in one pass through a block. */
  windowsPerPass(T: number): number
  /**
   * Windows of T tokens worth handing to one windowNll call: at least windowsPerPass, and more where each
   * layer's weights are loaded per call (models too large to keep resident), so that several passes share
   * one load; bounded by the hidden states it holds in memory.
   */
  windowsPerBatch(T: number): number
  /** Activation bytes one token needs inside a block, f32. */
  bytesPerToken(): number
  /** Frees every weight held in kernel memory. */
  close(): void
}
