// A model seen through in-memory replacements of some tensors (compressed weights, folded norms).
// The file-backed original is untouched; readers of the view get the replacement bytes as F32.

import type { TensorEntry } from '../formats/types'
import type { LoadedModel } from './loaded-model'
import type { RuntimeQuant } from '../compress/methods/method'

export interface ModelView extends LoadedModel {
  /** Run-time quantization the forward pass must apply (set by W8A8 methods). */
  runtime?: RuntimeQuant
  /** Replaces a tensor's values (same shape) with f32 data held in memory. */
  replace(name: string, values: Float32Array): void
  replaced(): ReadonlyMap<string, Float32Array>
}

export function withReplacements(model: LoadedModel): ModelView {
  const replacements = new Map<string, Float32Array>()
  const entries = new Map<string, TensorEntry>()
  const view: ModelView = {
    ...model,
    entry(name: string): TensorEntry {
      return entries.get(name) ?? model.entry(name)
    },
    replace(name: string, values: Float32Array): void {
      const orig = model.entry(name)
      const numel = orig.shape.reduce((a, b) => a * b, 1)
      if (values.length !== numel) throw new Error(`replacement for ${name} has ${values.length} values, the tensor has ${numel}`)
      replacements.set(name, values)
      const data = new Uint8Array(values.buffer, values.byteOffset, values.byteLength)
      entries.set(name, { ...orig, dtype: 'F32', byteLength: data.byteLength, data })
    },
    replaced: () => replacements,
  }
  view.files = { ...model.files, tensors: model.files.tensors.map((t) => view.entry(t.name)) }
  return view
}
