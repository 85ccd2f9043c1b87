// A structurally smaller model, in memory: decoder layers removed (the rest renumbered) and attention
// heads removed (q/k/v rows and o columns sliced out). Tensors that only move keep pointing at their
// source (file bytes or an earlier step's replacement); sliced ones hold their new F32 values. The HF
// config (or the GGUF metadata) is updated to match, so exports write a consistent config.json.

import { WhittleError } from '../../errors'
import { readTensorF32 } from '../../formats/read'
import type { ModelFiles, TensorEntry } from '../../formats/types'
import { modelFromFiles } from '../../model/loaded-model'
import { withReplacements, type ModelView } from '../../model/model-view'

export interface KeptHeads {
  /** Query heads kept (old indices, ascending). */
  q: number[]
  /** Key/value heads kept (old indices, ascending). */
  kv: number[]
}

export interface StructureChange {
  /** Decoder layers kept, old indices in order. */
  keepLayers: number[]
  /** Heads kept in every layer (the same counts everywhere: HF configs hold one head count). Keyed by old layer. */
  heads?: Map<number, KeptHeads>
}

export interface Restructured {
  view: ModelView
  /** Old tensor name → new name, for tensors that survive (renamed or not). */
  renames: Map<string, string>
}

/** `model.layers.7.mlp…` → `model.layers.5.mlp…` (also `blk.N.`, GPT-2's `h.N.`). */
export function renameLayer(name: string, from: number, to: number): string {
  return name.replace(new RegExp(`(^|\\.)(layers|h|blk)\\.${from}\\.`), `$1$2.${to}.`)
}

const LAYER_KEYS = ['num_hidden_layers', 'n_layer', 'num_layers']

function updatedConfig(
  files: ModelFiles,
  layers: number,
  heads: { q: number; kv: number; headDim: number } | null,
): Pick<ModelFiles, 'config' | 'metadata'> {
  let config = files.config
  if (config) {
    config = { ...config }
    const layerKey = LAYER_KEYS.find((k) => typeof config![k] === 'number') ?? 'num_hidden_layers'
    config[layerKey] = layers
    if (heads) {
      config.num_attention_heads = heads.q
      config.num_key_value_heads = heads.kv
      config.head_dim = heads.headDim
    }
  }
  const metadata = { ...files.metadata }
  const arch = files.metadata['general.architecture']
  if (files.format === 'gguf' && typeof arch === 'string') {
    metadata[`${arch}.block_count`] = layers
    if (heads)
      throw new WhittleError(
        'unsupported',
        files.path,
        'removing heads physically from a GGUF source is not supported; use masked mode or a safetensors source',
      )
  }
  return { config, metadata }
}

/** Rows [blocks of `size`] of a row-major [rows, cols] tensor, for the kept block indices. */
export function keepRowBlocks(w: Float32Array, cols: number, size: number, keep: number[]): Float32Array {
  const out = new Float32Array(keep.length * size * cols)
  keep.forEach((b, i) => out.set(w.subarray(b * size * cols, (b + 1) * size * cols), i * size * cols))
  return out
}

/** Column blocks of `size` of a row-major [rows, cols] tensor, for the kept block indices. */
export function keepColBlocks(w: Float32Array, rows: number, cols: number, size: number, keep: number[]): Float32Array {
  const width = keep.length * size
  const out = new Float32Array(rows * width)
  for (let r = 0; r < rows; r++)
    keep.forEach((b, i) => out.set(w.subarray(r * cols + b * size, r * cols + (b + 1) * size), r * width + i * size))
  return out
}

export function f32Entry(e: TensorEntry, name: string, shape: number[], values: Float32Array): TensorEntry {
  return {
    ...e,
    name,
    dtype: 'F32',
    shape,
    byteLength: values.byteLength,
    data: new Uint8Array(values.buffer, values.byteOffset, values.byteLength),
  }
}

export async function restructureModel(view: ModelView, change: StructureChange): Promise<Restructured> {
  const a = view.arch
  const keep = change.keepLayers
  if (keep.length === 0)
    throw new WhittleError('validation', view.files.path, 'a model needs at least one decoder layer')
  const newIndex = new Map(keep.map((old, i) => [old, i]))
  const counts = change.heads ? new Set([...change.heads.values()].map((h) => `${h.q.length}/${h.kv.length}`)) : null
  if (counts && counts.size > 1)
    throw new WhittleError(
      'validation',
      view.files.path,
      `physical head removal needs the same head counts in every layer (got ${[...counts].join(', ')})`,
    )
  const tensors: TensorEntry[] = []
  const renames = new Map<string, string>()
  const hd = a.headDim
  for (const t of view.files.tensors) {
    const place = a.places[t.name]
    const layer = place?.layer ?? null
    if (layer !== null && !newIndex.has(layer)) continue
    const name = layer === null ? t.name : renameLayer(t.name, layer, newIndex.get(layer)!)
    const e = view.entry(t.name)
    const heads = layer !== null ? change.heads?.get(layer) : undefined
    const role = place?.role
    if (heads && (role === 'q' || role === 'k' || role === 'v' || role === 'o')) {
      if (place!.transposed)
        throw new WhittleError(
          'unsupported',
          view.files.path,
          `${t.name}: heads cannot be removed from Conv1D weights yet`,
        )
      const w = await readTensorF32(e)
      const cols = e.shape.length === 2 ? e.shape[1] : 1
      const kept = role === 'q' || role === 'o' ? heads.q : heads.kv
      if (role === 'o' && !place!.bias) {
        tensors.push(f32Entry(e, name, [e.shape[0], kept.length * hd], keepColBlocks(w, e.shape[0], cols, hd, kept)))
      } else if (role === 'o') {
        tensors.push({ ...e, name }) // o_proj's bias lives in the hidden dimension, untouched
      } else {
        tensors.push(
          f32Entry(
            e,
            name,
            e.shape.length === 2 ? [kept.length * hd, cols] : [kept.length * hd],
            keepRowBlocks(w, cols, hd, kept),
          ),
        )
      }
    } else {
      tensors.push({ ...e, name })
    }
    renames.set(t.name, name)
  }
  const first = change.heads?.values().next().value
  const files: ModelFiles = {
    ...view.files,
    tensors,
    ...updatedConfig(view.files, keep.length, first ? { q: first.q.length, kv: first.kv.length, headDim: hd } : null),
  }
  const model = modelFromFiles(files)
  return { view: withReplacements({ ...model, runtime: view.runtime }), renames }
}
