// Storage accounting shared by the prediction before a run and the report after it: compressed
// tensors cost bits per weight × parameters, every other tensor its bytes on disk.

import type { LoadedModel } from '../model/loaded-model'

export interface StoredTensor {
  bitsPerWeight: number
  /** Parameters of the tensor. */
  params: number
}

export interface StorageTotals {
  /** Over the compressed tensors. */
  bitsPerWeight: number
  bytesBefore: number
  bytesAfter: number
  /** Every tensor of the result at its held dtype, as a dense export writes it. */
  bytesDenseAfter: number
  compressedParams: number
}

/** `after`: the model after structural steps (fewer layers or heads), when it differs from `model`. */
export function storageTotals(
  model: LoadedModel,
  compressed: ReadonlyMap<string, StoredTensor>,
  after: LoadedModel = model,
): StorageTotals {
  let bits = 0,
    params = 0,
    bytesBefore = 0,
    bytesAfter = 0,
    bytesDenseAfter = 0
  for (const e of model.files.tensors) bytesBefore += e.byteLength
  for (const e of after.files.tensors) {
    bytesDenseAfter += e.byteLength
    const c = compressed.get(e.name)
    if (!c) {
      bytesAfter += e.byteLength
      continue
    }
    bits += c.bitsPerWeight * c.params
    params += c.params
    bytesAfter += Math.ceil((c.bitsPerWeight * c.params) / 8)
  }
  return {
    bitsPerWeight: params ? bits / params : 0,
    bytesBefore,
    bytesAfter,
    bytesDenseAfter,
    compressedParams: params,
  }
}
