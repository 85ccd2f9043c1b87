// Meta's OPT in Hugging Face layout. Learned positions (embed_positions, offset by 2 rows), LayerNorm with
// biases, biased q/k/v/out projections and a gate-less fc1/fc2 MLP. OPT-350m embeds at word_embed_proj_dim
// and projects in/out of the hidden size (project_in / project_out, read as 'other').

import type { TensorRole } from '../../contract/api'
import type { ModelFiles } from '../formats/types'
import { buildArchitecture, nameTable, otherPlace } from './build'
import { DeclaredSource, configPath } from './declared-values'
import type { ModelArchitecture, TensorPlace } from './types'

const LAYER_PARTS = nameTable<TensorRole>({
  'self_attn.q_proj': 'q',
  'self_attn.k_proj': 'k',
  'self_attn.v_proj': 'v',
  'self_attn.out_proj': 'o',
  self_attn_layer_norm: 'attn_norm',
  fc1: 'fc1',
  fc2: 'fc2',
  final_layer_norm: 'ffn_norm',
})
const TOP_PARTS = nameTable<TensorRole>({
  embed_tokens: 'embed',
  embed_positions: 'pos_embed',
  final_layer_norm: 'final_norm',
})

export const OPT_LAYER_ROLES: readonly TensorRole[] = ['q', 'k', 'v', 'o', 'fc1', 'fc2', 'attn_norm', 'ffn_norm']

// `model.` is absent when a bare OPTModel was saved.
const LAYER_NAME = /^(?:model\.)?decoder\.layers\.(\d+)\.(.+)\.(weight|bias)$/
const TOP_NAME = /^(?:model\.)?decoder\.(embed_tokens|embed_positions|final_layer_norm)\.(weight|bias)$/

/** torch.nn.LayerNorm's default, which OPT never overrides. */
const OPT_LAYER_NORM_EPS = 1e-5

export function placeOptTensor(name: string): TensorPlace {
  const layer = LAYER_NAME.exec(name)
  if (layer) {
    const role = LAYER_PARTS.get(layer[2])
    if (!role) return otherPlace(name)
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
  if (name === 'lm_head.weight') return { role: 'lm_head', layer: null, transposed: false }
  return otherPlace(name)
}

export function looksLikeOpt(names: readonly string[]): boolean {
  return names.some((n) => /^(?:model\.)?decoder\.layers\.\d+\.self_attn\.out_proj\.weight$/.test(n))
}

export function describeOpt(model: ModelFiles, declaredName: string): ModelArchitecture {
  const source = model.config ? new DeclaredSource(model.config, configPath(model), 'config') : null
  return buildArchitecture(model, {
    family: 'opt',
    declaredName,
    place: placeOptTensor,
    layerRoles: OPT_LAYER_ROLES,
    geometry: source
      ? {
          layers: source.positiveInt('num_hidden_layers'),
          hiddenSize: source.positiveInt('hidden_size'),
          heads: source.positiveInt('num_attention_heads'),
          intermediateSize: source.positiveInt('ffn_dim'),
          vocabSize: source.positiveInt('vocab_size'),
          embedWidth: source.positiveInt('word_embed_proj_dim'),
        }
      : {},
    source,
    maxPositions: source?.positiveInt('max_position_embeddings')?.value ?? null,
    normEps: OPT_LAYER_NORM_EPS,
    ropeTheta: null,
    tiedEmbeddings: source ? (source.bool('tie_word_embeddings') ?? true) : undefined,
    ropeLayout: 'none',
  })
}
