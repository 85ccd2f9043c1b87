// GGUF checkpoints. llama.cpp uses one naming scheme for every architecture (token_embd, blk.N.attn_q, ...),
// and keeps geometry in `<arch>.*` metadata keys. Its Llama converter permutes q/k rows into the interleaved
// RoPE layout ('gguf'); Qwen2 and GPT-NeoX use NeoX-style RoPE and are stored unpermuted ('hf').

import type { TensorRole } from '../../contract/api'
import type { ModelFiles } from '../formats/types'
import { buildArchitecture, nameTable, otherPlace } from './build'
import { DeclaredSource } from './declared-values'
import { LLAMA_LAYER_ROLES } from './llama'
import type { Family, ModelArchitecture, TensorPlace } from './types'

interface GgufFamily {
  family: Family
  ropeLayout: ModelArchitecture['ropeLayout']
  /** ffn_up / ffn_down are gate-less MLP halves (fc1/fc2) outside the Llama family. */
  gatedMlp: boolean
  layerRoles: readonly TensorRole[]
}

const NON_GATED_ROLES: readonly TensorRole[] = ['qkv', 'o', 'fc1', 'fc2', 'attn_norm', 'ffn_norm']

/** general.architecture values read with a known family; others open as 'unknown'. */
export const GGUF_FAMILIES = nameTable<GgufFamily>({
  llama: { family: 'llama', ropeLayout: 'gguf', gatedMlp: true, layerRoles: LLAMA_LAYER_ROLES },
  qwen2: { family: 'llama', ropeLayout: 'hf', gatedMlp: true, layerRoles: LLAMA_LAYER_ROLES },
  gpt2: { family: 'gpt2', ropeLayout: 'none', gatedMlp: false, layerRoles: NON_GATED_ROLES },
  gptneox: { family: 'gpt-neox', ropeLayout: 'hf', gatedMlp: false, layerRoles: NON_GATED_ROLES },
})

const BLOCK_PARTS = nameTable<TensorRole>({
  attn_q: 'q',
  attn_k: 'k',
  attn_v: 'v',
  attn_qkv: 'qkv',
  attn_output: 'o',
  ffn_gate: 'gate',
  attn_norm: 'attn_norm',
  ffn_norm: 'ffn_norm',
})
const TOP_PARTS = nameTable<TensorRole>({
  token_embd: 'embed',
  position_embd: 'pos_embed',
  output_norm: 'final_norm',
  output: 'lm_head',
})

const BLOCK_NAME = /^blk\.(\d+)\.([a-z_]+)\.(weight|bias)$/
const TOP_NAME = /^([a-z_]+)\.(weight|bias)$/

export function placeGgufTensor(name: string, gatedMlp: boolean): TensorPlace {
  const block = BLOCK_NAME.exec(name)
  if (block) {
    const part = block[2]
    const role: TensorRole | undefined =
      part === 'ffn_up'
        ? gatedMlp
          ? 'up'
          : 'fc1'
        : part === 'ffn_down'
          ? gatedMlp
            ? 'down'
            : 'fc2'
          : BLOCK_PARTS.get(part)
    if (!role) return otherPlace(name)
    return { role, layer: Number(block[1]), transposed: false, ...(block[3] === 'bias' ? { bias: true } : {}) }
  }
  const top = TOP_NAME.exec(name)
  const role = top ? TOP_PARTS.get(top[1]) : undefined
  if (top && role) return { role, layer: null, transposed: false, ...(top[2] === 'bias' ? { bias: true } : {}) }
  return otherPlace(name)
}

/** llama.cpp's default when `<arch>.rope.freq_base` is absent. */
const LLAMA_CPP_DEFAULT_ROPE_BASE = 10000

/** Length of a metadata array, whether stored whole or summarised by the reader. */
function arrayLength(v: unknown): number | null {
  if (Array.isArray(v)) return v.length
  if (v && typeof v === 'object' && 'length' in v && typeof (v as { length: unknown }).length === 'number') {
    return (v as { length: number }).length
  }
  return null
}

export function describeGgufModel(model: ModelFiles, arch: string, known: GgufFamily): ModelArchitecture {
  const file = model.files[0] ?? model.path
  const source = new DeclaredSource(model.metadata, file, 'format')
  const key = (k: string): string => `${arch}.${k}`
  const warnings: string[] = []
  const vocabKey = source.positiveInt(key('vocab_size'))
  const tokenCount = arrayLength(model.metadata['tokenizer.ggml.tokens'])
  const embed = model.tensors.find((t) => t.name === 'token_embd.weight')
  if (!vocabKey && tokenCount !== null && embed?.shape.length === 2 && embed.shape[0] !== tokenCount) {
    warnings.push(`the tokenizer lists ${tokenCount} tokens but token_embd.weight has ${embed.shape[0]} rows`)
  }
  return buildArchitecture(model, {
    family: known.family,
    declaredName: arch,
    place: (name) => placeGgufTensor(name, known.gatedMlp),
    layerRoles: known.layerRoles,
    geometry: {
      layers: source.positiveInt(key('block_count')),
      hiddenSize: source.positiveInt(key('embedding_length')),
      heads: source.positiveInt(key('attention.head_count')),
      kvHeads: source.positiveInt(key('attention.head_count_kv')),
      headDim: source.positiveInt(key('attention.key_length')),
      intermediateSize: source.positiveInt(key('feed_forward_length')),
      // With an embedding present its rows are the vocabulary; a tokenizer of another length is only reported.
      vocabSize:
        vocabKey ?? (embed ? undefined : tokenCount ? { value: tokenCount, key: 'tokenizer.ggml.tokens' } : undefined),
    },
    source,
    maxPositions: source.positiveInt(key('context_length'))?.value ?? null,
    normEps: source.positiveNumber(key('attention.layer_norm_rms_epsilon'), key('attention.layer_norm_epsilon')),
    ropeTheta:
      known.ropeLayout === 'none'
        ? null
        : (source.positiveNumber(key('rope.freq_base')) ?? LLAMA_CPP_DEFAULT_ROPE_BASE),
    tiedEmbeddings: undefined,
    ropeLayout: known.ropeLayout,
    warnings,
  })
}
