// Architecture detection: GGUF `general.architecture` for GGUF files; for safetensors config.json
// `architectures` / `model_type`, else tensor names. A family Whittle does not know still opens, read as
// 'unknown' with every tensor in role 'other'.

import type { TensorRole } from '../../contract/api'
import { WhittleError } from '../errors'
import type { ModelFiles } from '../formats/types'
import { genericLayer, isBuiltinName, nameTable, otherPlace, placesRecord, setPlace } from './build'
import { configPath, lenientPositiveInt } from './declared-values'
import { GGUF_FAMILIES, describeGgufModel } from './gguf-llama'
import { describeGpt2, looksLikeGpt2 } from './gpt2'
import { describeNeox, looksLikeNeox } from './gpt-neox'
import { describeLlama, looksLikeLlama } from './llama'
import { describeOpt, looksLikeOpt } from './opt'
import type { Family, ModelArchitecture, TensorPlace } from './types'

export type { Family, ModelArchitecture, TensorPlace } from './types'
export { layerIntermediateSize } from './types'
export { PER_LAYER_INTERMEDIATE_KEY } from './llama'

/** HF class names in `architectures`. */
const HF_ARCHITECTURES = nameTable<Family>({
  LlamaForCausalLM: 'llama',
  LlamaModel: 'llama',
  MistralForCausalLM: 'llama',
  MistralModel: 'llama',
  Qwen2ForCausalLM: 'llama',
  Qwen2Model: 'llama',
  GPT2LMHeadModel: 'gpt2',
  GPT2Model: 'gpt2',
  OPTForCausalLM: 'opt',
  OPTModel: 'opt',
  GPTNeoXForCausalLM: 'gpt-neox',
  GPTNeoXModel: 'gpt-neox',
})
/** HF `model_type` values. */
const HF_MODEL_TYPES = nameTable<Family>({
  llama: 'llama',
  mistral: 'llama',
  qwen2: 'llama',
  gpt2: 'gpt2',
  opt: 'opt',
  gpt_neox: 'gpt-neox',
})

type Describe = (model: ModelFiles, declaredName: string) => ModelArchitecture
const HF_DESCRIBE: Readonly<Record<Exclude<Family, 'unknown'>, Describe>> = {
  llama: describeLlama,
  gpt2: describeGpt2,
  opt: describeOpt,
  'gpt-neox': describeNeox,
}

/** Tried in this order when nothing declares the architecture; the patterns do not overlap. */
const NAME_DETECTORS: readonly [Exclude<Family, 'unknown'>, (names: readonly string[]) => boolean][] = [
  ['llama', looksLikeLlama],
  ['opt', looksLikeOpt],
  ['gpt-neox', looksLikeNeox],
  ['gpt2', looksLikeGpt2],
]

interface Declared {
  name: string
  family: Family | null
}

function declaredByConfig(model: ModelFiles): Declared | null {
  const config = model.config
  if (!config) return null
  const file = configPath(model)
  const archs = Object.hasOwn(config, 'architectures') ? (config.architectures ?? null) : null
  if (archs !== null && (!Array.isArray(archs) || archs.some((a) => typeof a !== 'string'))) {
    throw new WhittleError('config', file, 'architectures must be a list of class names')
  }
  const modelType = Object.hasOwn(config, 'model_type') ? (config.model_type ?? null) : null
  if (modelType !== null && typeof modelType !== 'string') {
    throw new WhittleError('config', file, 'model_type must be a string')
  }
  const classes = (archs ?? []) as string[]
  for (const name of [...classes, ...(modelType === null ? [] : [modelType])]) {
    if (isBuiltinName(name))
      throw new WhittleError(
        'unsupported',
        file,
        `architecture "${name}" is not a model architecture (it names a JavaScript built-in)`,
      )
  }
  for (const name of classes) {
    const family = HF_ARCHITECTURES.get(name)
    if (family) return { name, family }
  }
  const byType = modelType ? HF_MODEL_TYPES.get(modelType) : undefined
  if (modelType && byType) return { name: classes[0] ?? modelType, family: byType }
  const name = classes[0] ?? modelType
  return name ? { name, family: null } : null
}

export function describeArchitecture(model: ModelFiles): ModelArchitecture {
  // A GGUF describes itself, in llama.cpp's names; a config.json lying beside it describes HF names it
  // does not use.
  if (model.format === 'gguf') {
    const arch = model.metadata['general.architecture']
    if (typeof arch !== 'string') {
      return describeUnknown(model, '', null, ['the GGUF metadata has no general.architecture'])
    }
    if (isBuiltinName(arch)) {
      throw new WhittleError(
        'unsupported',
        model.files[0] ?? model.path,
        `general.architecture "${arch}" is not a model architecture (it names a JavaScript built-in)`,
      )
    }
    const known = GGUF_FAMILIES.get(arch)
    if (known) return describeGgufModel(model, arch, known)
    return describeUnknown(model, arch, ggufGeometryKeys(model.metadata, arch))
  }
  const byConfig = declaredByConfig(model)
  if (byConfig) {
    if (byConfig.family && byConfig.family !== 'unknown') return HF_DESCRIBE[byConfig.family](model, byConfig.name)
    return describeUnknown(model, byConfig.name, model.config)
  }
  const names = model.tensors.map((t) => t.name)
  for (const [family, looksLike] of NAME_DETECTORS) {
    if (!looksLike(names)) continue
    const arch = HF_DESCRIBE[family](model, '')
    arch.warnings.unshift(`no config.json; read as ${family} from the tensor names, geometry from their shapes`)
    return arch
  }
  return describeUnknown(model, '', null)
}

/** GGUF `<arch>.*` keys renamed to the HF keys describeUnknown reads. */
function ggufGeometryKeys(metadata: Record<string, unknown>, arch: string): Record<string, unknown> {
  const k = (key: string): unknown =>
    Object.hasOwn(metadata, `${arch}.${key}`) ? metadata[`${arch}.${key}`] : undefined
  return {
    num_hidden_layers: k('block_count'),
    hidden_size: k('embedding_length'),
    num_attention_heads: k('attention.head_count'),
    num_key_value_heads: k('attention.head_count_kv'),
    head_dim: k('attention.key_length'),
    intermediate_size: k('feed_forward_length'),
    vocab_size: k('vocab_size'),
    max_position_embeddings: k('context_length'),
  }
}

/** An architecture Whittle has no adapter for: list every tensor, take what geometry is plainly stated. */
function describeUnknown(
  model: ModelFiles,
  declared: string,
  values: Record<string, unknown> | null,
  extraWarnings: string[] = [],
): ModelArchitecture {
  const places = placesRecord()
  let highest = -1
  for (const t of model.tensors) {
    setPlace(places, t.name, otherPlace(t.name))
    highest = Math.max(highest, genericLayer(t.name) ?? -1)
  }
  const v = values ?? {}
  const hidden = lenientPositiveInt(v, 'hidden_size', 'n_embd', 'd_model') ?? 0
  const heads = lenientPositiveInt(v, 'num_attention_heads', 'n_head') ?? 0
  const kvHeads = lenientPositiveInt(v, 'num_key_value_heads') ?? heads
  const headDim = lenientPositiveInt(v, 'head_dim') ?? (heads > 0 && hidden % heads === 0 ? hidden / heads : 0)
  return {
    family: 'unknown',
    declared,
    layers: lenientPositiveInt(v, 'num_hidden_layers', 'n_layer', 'num_layers') ?? highest + 1,
    hiddenSize: hidden,
    heads,
    kvHeads,
    headDim,
    intermediateSize: lenientPositiveInt(v, 'intermediate_size', 'ffn_dim', 'n_inner') ?? 0,
    vocabSize: lenientPositiveInt(v, 'vocab_size') ?? 0,
    maxPositions: lenientPositiveInt(v, 'max_position_embeddings', 'n_positions') ?? null,
    normEps: null,
    ropeTheta: null,
    tiedEmbeddings: false,
    ropeLayout: 'none',
    places,
    warnings: [
      ...extraWarnings,
      `architecture ${declared ? `'${declared}'` : '(undeclared)'} is not one Whittle knows (Llama, Mistral, Qwen2, GPT-2, OPT, GPT-NeoX); tensors are listed without roles`,
    ],
  }
}

/** Per places object: `${layer}|${role}` -> the weight tensor's name. */
const nameIndexes = new WeakMap<Record<string, TensorPlace>, Map<string, string>>()

/** The weight (never a bias) holding `role` in `layer` (null for tensors outside the blocks). */
export function tensorName(arch: ModelArchitecture, layer: number | null, role: TensorRole): string | undefined {
  let index = nameIndexes.get(arch.places)
  if (!index) {
    index = new Map()
    for (const [name, place] of Object.entries(arch.places)) {
      if (place.bias || place.role === 'other') continue
      const key = `${place.layer}|${place.role}`
      if (!index.has(key)) index.set(key, name)
    }
    nameIndexes.set(arch.places, index)
  }
  return index.get(`${layer}|${role}`)
}
