// GPT-NeoX (Pythia and kin) in Hugging Face layout: a fused query_key_value projection (laid out per head
// as [q, k, v] slices), LayerNorm with biases, NeoX-style (rotate_half) rotary on part of each head, and an
// untied output head called embed_out.

import type { TensorRole } from '../../contract/api'
import type { ModelFiles } from '../formats/types'
import { buildArchitecture, nameTable, otherPlace } from './build'
import { DeclaredSource, configPath } from './declared-values'
import type { ModelArchitecture, TensorPlace } from './types'

const LAYER_PARTS = nameTable<TensorRole>({
  'attention.query_key_value': 'qkv',
  'attention.dense': 'o',
  'mlp.dense_h_to_4h': 'fc1',
  'mlp.dense_4h_to_h': 'fc2',
  input_layernorm: 'attn_norm',
  post_attention_layernorm: 'ffn_norm',
})
const TOP_PARTS = nameTable<TensorRole>({ embed_in: 'embed', final_layer_norm: 'final_norm' })

export const NEOX_LAYER_ROLES: readonly TensorRole[] = ['qkv', 'o', 'fc1', 'fc2', 'attn_norm', 'ffn_norm']

// `gpt_neox.` is absent when a bare GPTNeoXModel was saved.
const LAYER_NAME = /^(?:gpt_neox\.)?layers\.(\d+)\.(.+)\.(weight|bias)$/
const TOP_NAME = /^(?:gpt_neox\.)?(embed_in|final_layer_norm)\.(weight|bias)$/

/** GPTNeoXConfig's default rotary base. */
const NEOX_DEFAULT_ROTARY_BASE = 10000

export function placeNeoxTensor(name: string): TensorPlace {
  const layer = LAYER_NAME.exec(name)
  if (layer) {
    const role = LAYER_PARTS.get(layer[2])
    if (!role) return otherPlace(name) // attention.bias / masked_bias / rotary_emb.inv_freq buffers
    return { role, layer: Number(layer[1]), transposed: false, ...(layer[3] === 'bias' ? { bias: true } : {}) }
  }
  const top = TOP_NAME.exec(name)
  if (top)
    return {
      role: TOP_PARTS.get(top[1]) ?? 'other',
      layer: null,
      transposed: false,
      ...(top[2] === 'bias' ? { bias: true } : {}),
    }
  if (name === 'embed_out.weight') return { role: 'lm_head', layer: null, transposed: false }
  return otherPlace(name)
}

export function looksLikeNeox(names: readonly string[]): boolean {
  return names.some((n) => /^(?:gpt_neox\.)?layers\.\d+\.attention\.query_key_value\.weight$/.test(n))
}

export function describeNeox(model: ModelFiles, declaredName: string): ModelArchitecture {
  const source = model.config ? new DeclaredSource(model.config, configPath(model), 'config') : null
  const ropeParameters = source?.object('rope_parameters')
  const ropeSource = ropeParameters && source ? new DeclaredSource(ropeParameters, source.file, 'config') : null
  return buildArchitecture(model, {
    family: 'gpt-neox',
    declaredName,
    place: placeNeoxTensor,
    layerRoles: NEOX_LAYER_ROLES,
    geometry: source
      ? {
          layers: source.positiveInt('num_hidden_layers'),
          hiddenSize: source.positiveInt('hidden_size'),
          heads: source.positiveInt('num_attention_heads'),
          intermediateSize: source.positiveInt('intermediate_size'),
          vocabSize: source.positiveInt('vocab_size'),
        }
      : {},
    source,
    maxPositions: source?.positiveInt('max_position_embeddings')?.value ?? null,
    normEps: source?.positiveNumber('layer_norm_eps') ?? null,
    ropeTheta: source
      ? (source.positiveNumber('rotary_emb_base', 'rope_theta') ??
        ropeSource?.positiveNumber('rope_theta') ??
        NEOX_DEFAULT_ROTARY_BASE)
      : null,
    tiedEmbeddings: source?.bool('tie_word_embeddings'),
    ropeLayout: 'hf',
  })
}
