// Tensor naming between Hugging Face Llama checkpoints and llama.cpp's GGUF scheme. Both directions go
// through the architecture adapter's role + layer, so a source is read by what a tensor is, not by how
// one format spells it.

import type { TensorRole } from '../../../contract/api'
import type { TensorPlace } from '../../arch/types'

const GGUF_LAYER_PARTS: Partial<Record<TensorRole, string>> = {
  q: 'attn_q',
  k: 'attn_k',
  v: 'attn_v',
  o: 'attn_output',
  gate: 'ffn_gate',
  up: 'ffn_up',
  down: 'ffn_down',
  attn_norm: 'attn_norm',
  ffn_norm: 'ffn_norm',
}
const GGUF_TOP_PARTS: Partial<Record<TensorRole, string>> = {
  embed: 'token_embd',
  final_norm: 'output_norm',
  lm_head: 'output',
}

const HF_LAYER_PARTS: Partial<Record<TensorRole, string>> = {
  q: 'self_attn.q_proj',
  k: 'self_attn.k_proj',
  v: 'self_attn.v_proj',
  o: 'self_attn.o_proj',
  gate: 'mlp.gate_proj',
  up: 'mlp.up_proj',
  down: 'mlp.down_proj',
  attn_norm: 'input_layernorm',
  ffn_norm: 'post_attention_layernorm',
}
const HF_TOP_NAMES: Partial<Record<TensorRole, string>> = {
  embed: 'model.embed_tokens',
  final_norm: 'model.norm',
  lm_head: 'lm_head',
}

function suffix(place: TensorPlace): string {
  return place.bias ? 'bias' : 'weight'
}

/** llama.cpp's name for a Llama tensor, or null for a role GGUF Llama has no slot for. */
export function ggufLlamaName(place: TensorPlace): string | null {
  if (place.layer === null) {
    const top = GGUF_TOP_PARTS[place.role]
    return top ? `${top}.${suffix(place)}` : null
  }
  const part = GGUF_LAYER_PARTS[place.role]
  return part ? `blk.${place.layer}.${part}.${suffix(place)}` : null
}

/** The Hugging Face LlamaForCausalLM name for a tensor, or null when there is none. */
export function hfLlamaName(place: TensorPlace): string | null {
  if (place.layer === null) {
    const top = HF_TOP_NAMES[place.role]
    return top ? `${top}.${suffix(place)}` : null
  }
  const part = HF_LAYER_PARTS[place.role]
  return part ? `model.layers.${place.layer}.${part}.${suffix(place)}` : null
}

/**
 * For each destination row, the source row it comes from, for a q/k row permutation. Derived from the
 * f32 permutations in arch/rope-permute by permuting a column of row indices, so raw bytes of any dtype
 * (F16, BF16) can be moved row by row without a lossy round trip.
 */
export function rowSources(
  rows: number,
  heads: number,
  permute: (w: Float32Array, rows: number, cols: number, heads: number) => Float32Array,
): Int32Array {
  const index = new Float32Array(rows)
  for (let r = 0; r < rows; r++) index[r] = r
  return Int32Array.from(permute(index, rows, 1, heads))
}

/** Applies a row mapping (from rowSources) to a row-major byte buffer. */
export function permuteRowBytes(bytes: Uint8Array, from: Int32Array): Uint8Array {
  const rowBytes = bytes.length / from.length
  const out = new Uint8Array(bytes.length)
  for (let r = 0; r < from.length; r++)
    out.set(bytes.subarray(from[r] * rowBytes, (from[r] + 1) * rowBytes), r * rowBytes)
  return out
}
