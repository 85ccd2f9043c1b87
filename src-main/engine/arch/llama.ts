// Llama-style checkpoints in Hugging Face layout: Llama, Mistral and Qwen2 share these names (Qwen2 adds
// q/k/v biases). q_proj/k_proj are in HF's rotate_half RoPE layout.

import type { TensorRole } from '../../contract/api'
import type { ModelFiles } from '../formats/types'
import { buildArchitecture, nameTable, otherPlace } from './build'
import { DeclaredSource, configPath } from './declared-values'
import { readSlicing, unslicedFiles } from './sliced-llama'
import type { ModelArchitecture, TensorPlace } from './types'

const LAYER_PARTS = nameTable<TensorRole>({
  'self_attn.q_proj': 'q',
  'self_attn.k_proj': 'k',
  'self_attn.v_proj': 'v',
  'self_attn.o_proj': 'o',
  'mlp.gate_proj': 'gate',
  'mlp.up_proj': 'up',
  'mlp.down_proj': 'down',
  input_layernorm: 'attn_norm',
  post_attention_layernorm: 'ffn_norm',
})

const TOP_PARTS = nameTable<TensorRole>({
  embed_tokens: 'embed',
  norm: 'final_norm',
})

export const LLAMA_LAYER_ROLES: readonly TensorRole[] = [
  'q',
  'k',
  'v',
  'o',
  'gate',
  'up',
  'down',
  'attn_norm',
  'ffn_norm',
]

// `model.` is absent when a bare LlamaModel (no LM head) was saved.
const LAYER_NAME = /^(?:model\.)?layers\.(\d+)\.(.+)\.(weight|bias)$/
const TOP_NAME = /^(?:model\.)?(embed_tokens|norm)\.(weight|bias)$/

export function placeLlamaTensor(name: string): TensorPlace {
  const layer = LAYER_NAME.exec(name)
  if (layer) {
    const role = LAYER_PARTS.get(layer[2])
    if (role)
      return { role, layer: Number(layer[1]), transposed: false, ...(layer[3] === 'bias' ? { bias: true } : {}) }
    return otherPlace(name)
  }
  const top = TOP_NAME.exec(name)
  if (top)
    return {
      role: TOP_PARTS.get(top[1]) ?? 'other',
      layer: null,
      transposed: false,
      ...(top[2] === 'bias' ? { bias: true } : {}),
    }
  if (name === 'lm_head.weight') return { role: 'lm_head', layer: null, transposed: false }
  return otherPlace(name)
}

export function looksLikeLlama(names: readonly string[]): boolean {
  return (
    names.some((n) => /^(?:model\.)?layers\.\d+\.self_attn\.q_proj\.weight$/.test(n)) &&
    names.some((n) => /^(?:model\.)?layers\.\d+\.mlp\.gate_proj\.weight$/.test(n))
  )
}

/**
 * Whittle's config.json key for per-layer MLP widths (a list, one per decoder layer; intermediate_size is
 * then their maximum). Written by structured pruning with different widths per layer (Bonsai, uniform
 * false); transformers does not read it (see the README for loading such a checkpoint there).
 */
export const PER_LAYER_INTERMEDIATE_KEY = 'whittle_intermediate_sizes'

/** HF's Llama/Mistral/Qwen2 configs default rope_theta to 10000 when the key is absent. */
const HF_DEFAULT_ROPE_THETA = 10000

export function describeLlama(model: ModelFiles, declaredName: string): ModelArchitecture {
  const config = model.config
  const source = config ? new DeclaredSource(config, configPath(model), 'config') : null
  const ropeParameters = source?.object('rope_parameters')
  const ropeSource = ropeParameters && source ? new DeclaredSource(ropeParameters, source.file, 'config') : null
  const hidden = source?.positiveInt('hidden_size')
  const layers = source?.positiveInt('num_hidden_layers')
  // A SliceGPT-sliced model (arch/sliced-llama.ts): its sliced shapes are checked there.
  const slicing = source && hidden && layers ? readSlicing(source, hidden.value, layers.value) : null
  const files = slicing ? unslicedFiles(model, slicing, hidden!.value, placeLlamaTensor, source!.file) : model
  const arch = buildArchitecture(files, {
    family: 'llama',
    declaredName,
    place: placeLlamaTensor,
    layerRoles: LLAMA_LAYER_ROLES,
    geometry: source
      ? {
          layers: source.positiveInt('num_hidden_layers'),
          hiddenSize: source.positiveInt('hidden_size'),
          heads: source.positiveInt('num_attention_heads'),
          kvHeads: source.positiveInt('num_key_value_heads'),
          headDim: source.positiveInt('head_dim'),
          intermediateSize: source.positiveInt('intermediate_size'),
          intermediateSizes: source.positiveIntList(PER_LAYER_INTERMEDIATE_KEY),
          vocabSize: source.positiveInt('vocab_size'),
        }
      : {},
    source,
    maxPositions: source?.positiveInt('max_position_embeddings')?.value ?? null,
    normEps: source?.positiveNumber('rms_norm_eps') ?? null,
    ropeTheta: source
      ? (source.positiveNumber('rope_theta') ?? ropeSource?.positiveNumber('rope_theta') ?? HF_DEFAULT_ROPE_THETA)
      : null,
    tiedEmbeddings: source?.bool('tie_word_embeddings'),
    ropeLayout: 'hf',
  })
  return slicing ? { ...arch, slicing } : arch
}
