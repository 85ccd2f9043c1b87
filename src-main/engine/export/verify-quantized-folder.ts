// The read-back check shared by the single-file compressed-tensors exports (pack-quantized, W8A8): re-open
// model.safetensors, require every part a Linear's decoder asks for with its dtype and shape, check that
// every tensor the recipe left alone is there at its size, and that each quantized Linear decodes from its
// stored parts to the view's weights bit for bit. Each format says only how its parts decode.

import path from 'node:path'
import { WhittleError } from '../errors'
import type { UniformGridRecord } from '../compress/quant/record'
import { openModelFiles } from '../formats/open'
import { readTensorF32 } from '../formats/read'
import type { DType, TensorEntry } from '../formats/types'
import { closeFile } from '../io/ranged-file'
import type { ModelView } from '../model/model-view'
import { moduleOf, sameBits } from './gptq-export'

/** A stored part, required to exist with this dtype (null: any) and shape, else a 'format' error. */
export type NeedPart = (name: string, dtype: DType | null, shape: number[]) => TensorEntry

/** Decodes Linear `module` (its record r) from the re-opened parts. */
export type DecodeLinear = (module: string, r: UniformGridRecord, need: NeedPart) => Promise<Float32Array>

export async function verifyQuantizedFolder(
  view: ModelView,
  records: ReadonlyMap<string, UniformGridRecord>,
  dir: string,
  decode: DecodeLinear,
  /** Adjusts the expected weights where the format cannot hold a bit pattern (e.g. −0 in integer codes). */
  expectStored: (want: Float32Array) => void = () => {},
): Promise<void> {
  const file = path.join(dir, 'model.safetensors')
  const reopened = await openModelFiles(file)
  try {
    const byName = new Map(reopened.tensors.map((t) => [t.name, t]))
    const need: NeedPart = (name, dtype, shape) => {
      const e = byName.get(name)
      if (!e || (dtype !== null && e.dtype !== dtype) || JSON.stringify(e.shape) !== JSON.stringify(shape))
        throw new WhittleError(
          'format',
          dir,
          `verification failed: ${name} is missing or not ${dtype ?? ''} ${JSON.stringify(shape)}`,
        )
      return e
    }
    for (const t of view.files.tensors) {
      const r = records.get(t.name)
      if (!r) {
        const e = view.entry(t.name)
        if (need(t.name, e.dtype, e.shape).byteLength !== e.byteLength)
          throw new WhittleError('format', dir, `verification failed: ${t.name} has the wrong size`)
        continue
      }
      const m = moduleOf(t.name)
      const got = await decode(m, r, need)
      const want = await readTensorF32(view.entry(t.name))
      expectStored(want)
      const at = sameBits(got, want)
      if (at >= 0)
        throw new WhittleError(
          'format',
          dir,
          `verification failed: ${m} decodes to ${got[at]} at element ${at}, the compressed model has ${want[at]}`,
        )
    }
  } finally {
    closeFile(file)
  }
}
