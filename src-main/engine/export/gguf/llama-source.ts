// What a Llama source must provide for GGUF export, and the llama.* / general.* metadata llama.cpp reads.

import path from 'node:path'
import { WhittleError } from '../../errors'
import type { GgufKv } from '../../formats/gguf-writer'
import type { LoadedModel } from '../../model/loaded-model'

/** HF model_type values whose checkpoints llama.cpp converts as 'llama' (with the q/k row permutation). */
const LLAMA_MODEL_TYPES = new Set(['llama', 'mistral'])

export interface LlamaSource {
  /** q/k rows are in HF rotate_half order and need hfToGgufRows (true for HF sources). */
  permuteQk: boolean
}

/** Accepts Llama-family HF checkpoints and llama GGUF files; anything else is refused by name. */
export function checkLlamaSource(model: LoadedModel): LlamaSource {
  const where = model.files.path
  if (model.arch.family !== 'llama') {
    throw new WhittleError(
      'unsupported',
      where,
      `GGUF export supports the Llama family; this model is ${model.arch.family} (${model.arch.declared || 'undeclared'})`,
    )
  }
  if (model.files.format === 'gguf') {
    if (model.arch.declared !== 'llama')
      throw new WhittleError(
        'unsupported',
        where,
        `GGUF export supports general.architecture 'llama', not '${model.arch.declared}'`,
      )
    return { permuteQk: false }
  }
  const modelType = model.files.config?.model_type
  if (typeof modelType !== 'string' || !LLAMA_MODEL_TYPES.has(modelType)) {
    throw new WhittleError(
      'unsupported',
      where,
      `GGUF export supports Llama and Mistral checkpoints; config.json model_type is ${JSON.stringify(modelType ?? null)}`,
    )
  }
  if (model.arch.ropeLayout !== 'hf')
    throw new WhittleError('unsupported', where, `unexpected RoPE layout ${model.arch.ropeLayout} for a HF checkpoint`)
  return { permuteQk: true }
}

/** llama.cpp's defaults when a source declares no epsilon / RoPE base. */
const DEFAULT_RMS_EPS = 1e-5
const DEFAULT_ROPE_BASE = 10000

function sourceName(model: LoadedModel): string {
  const declared = model.files.metadata['general.name']
  if (model.files.format === 'gguf' && typeof declared === 'string' && declared !== '') return declared
  // A folder is named for its model; a lone weights file (model.safetensors) is not, so use its folder.
  const p = model.files.path
  const file = path.basename(p).replace(/\.(gguf|safetensors)$/, '')
  return file === 'model' ? path.basename(path.dirname(p)) : file
}

function sourceContextLength(model: LoadedModel): number {
  if (model.arch.maxPositions !== null) return model.arch.maxPositions
  const v = model.files.metadata['llama.context_length']
  return typeof v === 'number' && Number.isInteger(v) && v > 0 ? v : 2048
}

/** general.* and llama.* keys (names as in llama.cpp's gguf-py constants). */
export function llamaMetadata(model: LoadedModel, fileType: number, quantized: boolean, name?: string): GgufKv[] {
  const a = model.arch
  if (a.intermediateSizes)
    throw new WhittleError(
      'unsupported',
      model.files.path,
      'GGUF export of a model whose layers have different MLP widths (whittle_intermediate_sizes) is not supported; prune with the same width in every layer (uniform) or export safetensors',
    )
  const kv: GgufKv[] = [
    { key: 'general.architecture', type: 'string', value: 'llama' },
    { key: 'general.name', type: 'string', value: name ?? sourceName(model) },
    { key: 'general.file_type', type: 'u32', value: fileType },
  ]
  // Version 2 of the block layouts (the current one, since 2023); llama.cpp writes it for quantized files.
  if (quantized) kv.push({ key: 'general.quantization_version', type: 'u32', value: 2 })
  kv.push(
    { key: 'llama.vocab_size', type: 'u32', value: a.vocabSize },
    { key: 'llama.context_length', type: 'u32', value: sourceContextLength(model) },
    { key: 'llama.embedding_length', type: 'u32', value: a.hiddenSize },
    { key: 'llama.block_count', type: 'u32', value: a.layers },
    { key: 'llama.feed_forward_length', type: 'u32', value: a.intermediateSize },
    { key: 'llama.rope.dimension_count', type: 'u32', value: a.headDim },
    { key: 'llama.attention.head_count', type: 'u32', value: a.heads },
    { key: 'llama.attention.head_count_kv', type: 'u32', value: a.kvHeads },
    { key: 'llama.attention.layer_norm_rms_epsilon', type: 'f32', value: a.normEps ?? DEFAULT_RMS_EPS },
    { key: 'llama.rope.freq_base', type: 'f32', value: a.ropeTheta ?? DEFAULT_ROPE_BASE },
  )
  return kv
}
