// llama.cpp's per-tensor rules for its K-quant mixes (src/llama-quant.cpp, llama_tensor_get_type_impl
// and tensor_type_fallback), re-expressed for the mixes Whittle writes, each outcome named so that the
// export can say why a tensor got its type. What the rules read:
// - the tensor's category, from its GGUF name as llama.cpp derives it (output, token_embd, attn_v, …);
// - running counters over the tensors in llama.cpp's order (i_attention_wv, i_ffn_down): the index of this
//   attn_v / ffn_down among those the rules have seen, which for a dense model is the layer index;
// - n_attention_wv (how many attn_v tensors the model has) and the layer count, for use_more_bits;
// - n_gqa (query heads per K/V head), n_expert, and whether the model is a 70B Llama.
// Falcon's own branches are left out: Whittle exports Llama-architecture GGUFs only.

import type { GgufMix, GgufTensorTypeName, GgufTypeRule } from '../../../contract/gguf-export-types'
import { GGUF_MIX_BASE } from '../../../contract/gguf-export-types'
import { ggufBlockElements, ggufFallback } from '../../compress/gguf-types/fallback'

export type TensorCategory =
  | 'token_embd'
  | 'output'
  | 'attn_q'
  | 'attn_k'
  | 'attn_v'
  | 'attn_qkv'
  | 'attn_kv_b'
  | 'attn_output'
  | 'ffn_up'
  | 'ffn_gate'
  | 'ffn_down'
  | 'other'

/** llama.cpp's tensor_get_category: by the GGUF name, in the same order of tests. */
export function tensorCategory(name: string): TensorCategory {
  if (name === 'output.weight') return 'output'
  if (name === 'token_embd.weight' || name === 'per_layer_token_embd.weight') return 'token_embd'
  const parts: [string, TensorCategory][] = [
    ['attn_qkv.weight', 'attn_qkv'],
    ['attn_kv_b.weight', 'attn_kv_b'],
    ['attn_v.weight', 'attn_v'],
    ['attn_k.weight', 'attn_k'],
    ['attn_q.weight', 'attn_q'],
    ['attn_output.weight', 'attn_output'],
    ['ffn_up', 'ffn_up'],
    ['ffn_gate', 'ffn_gate'],
    ['ffn_down', 'ffn_down'],
  ]
  for (const [part, category] of parts) if (name.includes(part)) return category
  return 'other'
}

/** attn_v-like tensors, which the rules treat as the most sensitive (category_is_attn_v). */
export function isAttnVLike(c: TensorCategory): boolean {
  return c === 'attn_v' || c === 'attn_qkv' || c === 'attn_kv_b'
}

/** llama.cpp's use_more_bits: the first and last eighth of the layers, and every third layer in between. */
export function useMoreBits(layer: number, layers: number): boolean {
  const eighth = Math.trunc(layers / 8)
  return layer < eighth || layer >= Math.trunc((7 * layers) / 8) || (layer - eighth) % 3 === 2
}

/** What the rules know about the model. */
export interface PolicyModel {
  layers: number
  heads: number
  kvHeads: number
  /** 0 or 1 for a dense model. */
  experts: number
}

/** The counters llama.cpp keeps while it walks the tensors (quantize_state_impl). */
export interface PolicyCounters {
  nAttentionWv: number
  iAttentionWv: number
  iFfnDown: number
}

export interface RuleOutcome {
  type: GgufTensorTypeName
  rule: GgufTypeRule
}

/** Elements per block of a type (1 for F32/F16/BF16). */
export function blockElements(type: GgufTensorTypeName): number {
  return ggufBlockElements(type)
}

/**
 * llama.cpp's LLM_TYPE_70B for a Llama: 80 layers with fewer K/V heads than query heads (with as many it
 * is the 65B).
 */
function is70b(m: PolicyModel): boolean {
  return m.layers === 80 && m.kvHeads < m.heads
}

/** The layer an ffn_down belongs to: the counter for a dense model, the name for a mixture of experts. */
function ffnLayer(name: string, counter: number, m: PolicyModel): number {
  if (m.experts <= 1) return counter
  const match = /^blk\.(\d+)\./.exec(name)
  return match ? Number(match[1]) : counter
}

/**
 * The type the mix's rules give a quantizable tensor (before any block-size fallback), and the rule that
 * decided it. Advances the counters as llama.cpp does.
 */
export function mixRule(mix: GgufMix, name: string, cols: number, m: PolicyModel, k: PolicyCounters): RuleOutcome {
  const base: GgufTensorTypeName = GGUF_MIX_BASE[mix]
  const category = tensorCategory(name)
  const gqa = m.kvHeads > 0 ? Math.trunc(m.heads / m.kvHeads) : 1
  const keep: RuleOutcome = { type: base, rule: 'base-type' }

  if (category === 'output') {
    // Whittle always writes output.weight, so token_embd is never treated as a tied output here.
    if (cols % blockElements(base) !== 0) return { type: 'Q8_0', rule: 'output-q8_0' }
    return { type: 'Q6_K', rule: 'output-q6_k' }
  }
  if (category === 'token_embd') return keep

  if (isAttnVLike(category)) {
    let out = keep
    const i = k.iAttentionWv
    if (mix === 'Q2_K_MIX')
      out = gqa >= 4 ? { type: 'Q4_K', rule: 'attn_v-gqa' } : { type: 'Q3_K', rule: 'attn_v-q2_k' }
    else if (mix === 'Q3_K_M')
      out = i < 2 ? { type: 'Q5_K', rule: 'attn_v-first-2' } : { type: 'Q4_K', rule: 'attn_v-q3_k_m' }
    else if (mix === 'Q3_K_L') out = { type: 'Q5_K', rule: 'attn_v-q3_k_l' }
    else if ((mix === 'Q4_K_M' || mix === 'Q5_K_M') && useMoreBits(i, k.nAttentionWv))
      out = { type: 'Q6_K', rule: 'attn_v-more-bits' }
    else if (mix === 'Q4_K_S' && i < 4) out = { type: 'Q5_K', rule: 'attn_v-first-4' }
    // attn_v of a 70B is 8x smaller than attn_q: a few more bits there cost almost nothing.
    if (is70b(m) && (out.type === 'Q3_K' || out.type === 'Q4_K')) out = { type: 'Q5_K', rule: 'attn_v-70b' }
    if (m.experts === 8) out = { type: 'Q8_0', rule: 'attn_v-8-experts' }
    k.iAttentionWv++
    return out
  }

  if (category === 'attn_k') return m.experts === 8 ? { type: 'Q8_0', rule: 'attn_k-8-experts' } : keep

  if (category === 'ffn_down') {
    const layer = ffnLayer(name, k.iFfnDown, m)
    const n = m.layers
    let out = keep
    if (mix === 'Q2_K_MIX') out = { type: 'Q3_K', rule: 'ffn_down-q2_k' }
    else if (mix === 'Q3_K_M')
      out =
        layer < Math.trunc(n / 16)
          ? { type: 'Q5_K', rule: 'ffn_down-first-sixteenth' }
          : { type: 'Q4_K', rule: 'ffn_down-q3_k_m' }
    else if (mix === 'Q3_K_L') out = { type: 'Q5_K', rule: 'ffn_down-q3_k_l' }
    else if (mix === 'Q4_K_M' && useMoreBits(layer, n)) out = { type: 'Q6_K', rule: 'ffn_down-more-bits' }
    else if (mix === 'Q5_K_M' && useMoreBits(layer, n)) out = { type: 'Q6_K', rule: 'ffn_down-more-bits' }
    else if (mix === 'Q4_K_S' && layer < Math.trunc(n / 8)) out = { type: 'Q5_K', rule: 'ffn_down-first-eighth' }
    k.iFfnDown++
    return out
  }

  if (category === 'attn_output') {
    if (m.experts === 8) {
      const lowBit: GgufMix[] = ['Q2_K_MIX', 'Q3_K_S', 'Q3_K_M', 'Q4_K_S', 'Q4_K_M']
      return lowBit.includes(mix) ? { type: 'Q5_K', rule: 'attn_output-8-experts' } : keep
    }
    if (mix === 'Q2_K_MIX') return { type: 'Q3_K', rule: 'attn_output-q2_k' }
    if (mix === 'Q3_K_M') return { type: 'Q4_K', rule: 'attn_output-q3_k_m' }
    if (mix === 'Q3_K_L') return { type: 'Q5_K', rule: 'attn_output-q3_k_l' }
    return keep
  }
  return keep
}

/**
 * llama.cpp's tensor_type_fallback: the type to use when a row is not a whole number of `type`'s blocks,
 * from the one table the recipe's gguf step uses too (compress/gguf-types/fallback.ts).
 */
export function fallbackType(type: GgufTensorTypeName, cols: number): { type: GgufTensorTypeName; reason?: string } {
  return ggufFallback(type, cols)
}
