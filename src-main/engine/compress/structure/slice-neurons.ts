// MLP neurons removed physically: per layer, the kept rows of gate_proj and up_proj (and their biases) and
// the kept columns of down_proj. With the same width in every layer the config's intermediate_size says
// it (a plain checkpoint transformers loads); with different widths, intermediate_size is the largest and
// the per-layer widths go under PER_LAYER_INTERMEDIATE_KEY, which Whittle reads back.

import { PER_LAYER_INTERMEDIATE_KEY } from '../../arch'
import { WhittleError } from '../../errors'
import { readTensorF32 } from '../../formats/read'
import type { ModelFiles, TensorEntry } from '../../formats/types'
import { modelFromFiles } from '../../model/loaded-model'
import { withReplacements, type ModelView } from '../../model/model-view'
import { f32Entry, keepColBlocks, keepRowBlocks } from './restructure'

/** A view whose layer l keeps MLP neurons `kept[l]` (old indices, ascending); other tensors as they were. */
export async function sliceNeurons(view: ModelView, kept: number[][]): Promise<ModelView> {
  const a = view.arch
  if (view.files.format === 'gguf')
    throw new WhittleError(
      'unsupported',
      view.files.path,
      'removing MLP neurons physically from a GGUF source is not supported; use a safetensors source',
    )
  if (kept.length !== a.layers || kept.some((k) => k.length === 0))
    throw new WhittleError('validation', view.files.path, 'every layer must keep at least one MLP neuron')
  const tensors: TensorEntry[] = []
  for (const t of view.files.tensors) {
    const place = a.places[t.name]
    const e = view.entry(t.name)
    const role = place?.role
    const layer = place?.layer ?? null
    if (layer === null || !(role === 'gate' || role === 'up' || role === 'down') || (role === 'down' && place.bias)) {
      tensors.push(e) // down_proj's bias lives in the hidden dimension, untouched
      continue
    }
    if (place.transposed)
      throw new WhittleError('unsupported', view.files.path, `${t.name}: neurons cannot be removed from Conv1D weights`)
    const keep = kept[layer]
    const w = await readTensorF32(e)
    if (role === 'down') {
      const [rows, cols] = e.shape
      tensors.push(f32Entry(e, t.name, [rows, keep.length], keepColBlocks(w, rows, cols, 1, keep)))
    } else {
      const cols = e.shape.length === 2 ? e.shape[1] : 1
      const shape = e.shape.length === 2 ? [keep.length, cols] : [keep.length]
      tensors.push(f32Entry(e, t.name, shape, keepRowBlocks(w, cols, 1, keep)))
    }
  }
  const widths = kept.map((k) => k.length)
  const uniform = widths.every((w) => w === widths[0])
  let config = view.files.config
  if (!config && !uniform)
    throw new WhittleError(
      'unsupported',
      view.files.path,
      'different MLP widths per layer need a config.json to record them; keep the same width in every layer',
    )
  if (config) {
    config = { ...config, intermediate_size: Math.max(...widths) }
    if (uniform) delete config[PER_LAYER_INTERMEDIATE_KEY]
    else config[PER_LAYER_INTERMEDIATE_KEY] = widths
  }
  const files: ModelFiles = { ...view.files, tensors, config }
  const model = modelFromFiles(files)
  return withReplacements({ ...model, runtime: view.runtime })
}
