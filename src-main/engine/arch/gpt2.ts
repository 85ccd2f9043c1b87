// GPT-2 in Hugging Face layout. Its attention and MLP use Conv1D, whose weights are stored [in, out]
// (transposed against nn.Linear); positions are a learned table (wpe), so there is no RoPE.
// Checkpoints saved from GPT2Model rather than GPT2LMHeadModel lack the `transformer.` prefix.

import type { TensorRole } from '../../contract/api'
import type { ModelFiles } from '../formats/types'
import { buildArchitecture, nameTable, otherPlace } from './build'
import { DeclaredSource, configPath } from './declared-values'
import type { ModelArchitecture, TensorPlace } from './types'

const LAYER_PARTS = nameTable<TensorRole>({
  ln_1: 'attn_norm',
  'attn.c_attn': 'qkv',
  'attn.c_proj': 'o',
  ln_2: 'ffn_norm',
  'mlp.c_fc': 'fc1',
  'mlp.c_proj': 'fc2',
})
const CONV1D_PARTS = new Set(['attn.c_attn', 'attn.c_proj', 'mlp.c_fc', 'mlp.c_proj'])
const TOP_PARTS = nameTable<TensorRole>({ wte: 'embed', wpe: 'pos_embed', ln_f: 'final_norm' })

export const GPT2_LAYER_ROLES: readonly TensorRole[] = ['qkv', 'o', 'fc1', 'fc2', 'attn_norm', 'ffn_norm']

const LAYER_NAME = /^(?:transformer\.)?h\.(\d+)\.(.+)\.(weight|bias)$/
const TOP_NAME = /^(?:transformer\.)?(wte|wpe|ln_f)\.(weight|bias)$/

export function placeGpt2Tensor(name: string): TensorPlace {
  const layer = LAYER_NAME.exec(name)
  if (layer) {
    const role = LAYER_PARTS.get(layer[2])
    if (!role) return otherPlace(name) // e.g. the causal-mask buffers attn.bias / attn.masked_bias
    const bias = layer[3] === 'bias'
    return { role, layer: Number(layer[1]), transposed: !bias && CONV1D_PARTS.has(layer[2]), ...(bias ? { bias } : {}) }
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

export function looksLikeGpt2(names: readonly string[]): boolean {
  return names.some((n) => /^(?:transformer\.)?h\.\d+\.attn\.c_attn\.weight$/.test(n))
}

export function describeGpt2(model: ModelFiles, declaredName: string): ModelArchitecture {
  const source = model.config ? new DeclaredSource(model.config, configPath(model), 'config') : null
  return buildArchitecture(model, {
    family: 'gpt2',
    declaredName,
    place: placeGpt2Tensor,
    layerRoles: GPT2_LAYER_ROLES,
    geometry: source
      ? {
          layers: source.positiveInt('n_layer', 'num_hidden_layers'),
          hiddenSize: source.positiveInt('n_embd', 'hidden_size'),
          heads: source.positiveInt('n_head', 'num_attention_heads'),
          // n_inner null means 4 × n_embd; the shapes then say what it is.
          intermediateSize: source.positiveInt('n_inner'),
          vocabSize: source.positiveInt('vocab_size'),
        }
      : {},
    source,
    maxPositions: source?.positiveInt('n_positions', 'max_position_embeddings')?.value ?? null,
    normEps: source?.positiveNumber('layer_norm_epsilon') ?? null,
    ropeTheta: null,
    // GPT2LMHeadModel always ties lm_head to wte unless the config turns it off.
    tiedEmbeddings: source ? (source.bool('tie_word_embeddings') ?? true) : undefined,
    ropeLayout: 'none',
  })
}
