// The models SliceGPT builds in memory: one-layer models for its calibration passes, and the finished
// result, sliced (arch/sliced-llama.ts: narrower tensors, shortcut matrices, the config key) or dense
// (the same weights lifted back to the original hidden size, a plain Llama).

import { shortcutName, slicingConfigValue, SLICEGPT_CONFIG_KEY } from '../../arch/sliced-llama'
import { tensorName } from '../../arch'
import { WhittleError } from '../../errors'
import type { ModelFiles, TensorEntry } from '../../formats/types'
import { modelFromFiles, type LoadedModel } from '../../model/loaded-model'
import { renameLayer } from './restructure'

/** A tensor's new values, F32, with its shape. */
export interface NewTensor {
  shape: number[]
  values: Float32Array
}

export const LLAMA_LINEARS = ['q', 'k', 'v', 'o', 'gate', 'up', 'down'] as const
export type LlamaLinear = (typeof LLAMA_LINEARS)[number]

/** One decoder layer as a calibration pass runs it: its seven Linears, two shortcuts and the widths. */
export interface PassLayer {
  linears: Record<LlamaLinear, NewTensor>
  /** [dims[0], dims[1]] and [dims[1], dims[2]], stored [in, out]. */
  attnShortcut: Float32Array
  mlpShortcut: Float32Array
  /** Residual widths: entering attention, entering the MLP, leaving the block. */
  dims: [number, number, number]
}

export function memoryEntry(file: string, name: string, t: NewTensor): TensorEntry {
  const v = t.values
  return {
    name,
    dtype: 'F32',
    shape: t.shape,
    file,
    offset: 0,
    byteLength: v.byteLength,
    data: new Uint8Array(v.buffer, v.byteOffset, v.byteLength),
  }
}

export function ones(n: number): NewTensor {
  return { shape: [n], values: new Float32Array(n).fill(1) }
}

export function requiredName(model: LoadedModel, layer: number | null, role: Parameters<typeof tensorName>[2]): string {
  const name = tensorName(model.arch, layer, role)
  if (!name)
    throw new WhittleError(
      'not-found',
      model.files.path,
      `slicegpt: the model has no ${role} tensor${layer === null ? '' : ` in layer ${layer}`}`,
    )
  return name
}

/** The bias beside a Linear's weight, if the model has one (Qwen2's q/k/v). */
export function biasName(model: LoadedModel, weightName: string): string | null {
  const name = weightName.replace(/\.weight$/, '.bias')
  return name !== weightName && model.arch.places[name] ? name : null
}

/** Layer `layer` of `model` alone, renumbered 0, with the pass's weights: what one calibration pass runs. */
export function oneLayerModel(model: LoadedModel, layer: number, p: PassLayer): LoadedModel {
  const file = model.files.path
  const tensors: TensorEntry[] = []
  let qName = ''
  for (const role of LLAMA_LINEARS) {
    const name = requiredName(model, layer, role)
    const renamed = renameLayer(name, layer, 0)
    if (role === 'q') qName = renamed
    tensors.push(memoryEntry(file, renamed, p.linears[role]))
    const bias = biasName(model, name)
    if (bias) tensors.push({ ...model.entry(bias), name: renameLayer(bias, layer, 0) })
  }
  const [da, dm, dn] = p.dims
  tensors.push(memoryEntry(file, renameLayer(requiredName(model, layer, 'attn_norm'), layer, 0), ones(da)))
  tensors.push(memoryEntry(file, renameLayer(requiredName(model, layer, 'ffn_norm'), layer, 0), ones(dm)))
  tensors.push(memoryEntry(file, requiredName(model, null, 'final_norm'), ones(dn)))
  tensors.push(memoryEntry(file, shortcutName(qName, 'attn'), { shape: [da, dm], values: p.attnShortcut }))
  tensors.push(memoryEntry(file, shortcutName(qName, 'mlp'), { shape: [dm, dn], values: p.mlpShortcut }))
  const config = {
    ...model.files.config,
    num_hidden_layers: 1,
    [SLICEGPT_CONFIG_KEY]: slicingConfigValue({ dims: [...p.dims], fraction: 0 }),
  }
  return modelFromFiles({ ...model.files, tensors, config })
}

/**
 * The finished model: every tensor of `model` in its order, those in `replaced` with their new values,
 * then `added` (shortcut matrices, an untied lm_head). `slicing` adds the config key; without it the
 * result is a plain Llama (the dense reconstruction). Embeddings are untied either way: the embedding
 * and the output head are rotated differently.
 */
export function resultModel(
  model: LoadedModel,
  replaced: Map<string, NewTensor>,
  added: Map<string, NewTensor>,
  slicing: { dims: number[]; fraction: number } | null,
): LoadedModel {
  const file = model.files.path
  const tensors: TensorEntry[] = model.files.tensors.map((t) => {
    const r = replaced.get(t.name)
    return r ? memoryEntry(file, t.name, r) : model.entry(t.name)
  })
  for (const [name, t] of added) tensors.push(memoryEntry(file, name, t))
  const config: Record<string, unknown> = { ...model.files.config, tie_word_embeddings: false }
  delete config[SLICEGPT_CONFIG_KEY]
  if (slicing) config[SLICEGPT_CONFIG_KEY] = slicingConfigValue(slicing)
  const files: ModelFiles = { ...model.files, tensors, config }
  return modelFromFiles(files)
}
