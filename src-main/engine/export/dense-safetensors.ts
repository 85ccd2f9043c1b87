// The simplest export: a dense safetensors checkpoint holding the compressed weights as F32 (the
// dequantized or pruned values) and every other tensor exactly as it was, beside the model's config,
// generation config and tokenizer files. Verified by re-reading every written tensor.

import path from 'node:path'
import { WhittleError } from '../errors'
import type { TensorEntry } from '../formats/types'
import { closeFile } from '../io/ranged-file'
import { openModelFiles } from '../formats/open'
import { readTensorBytes } from '../formats/read'
import { writeSafetensors } from '../formats/safetensors-writer'
import type { ModelView } from '../model/model-view'
import { copySidecars, writeJson } from './gptq-export'

export async function writeDenseSafetensors(view: ModelView, dir: string): Promise<string[]> {
  if (view.files.format !== 'safetensors') {
    throw new WhittleError('unsupported', view.files.path, 'dense safetensors export needs a safetensors source (GGUF sources export as GGUF)')
  }
  const file = path.join(dir, 'model.safetensors')
  const entries = view.files.tensors.map((t) => view.entry(t.name))
  await writeSafetensors(file, entries.map((e) => ({
    name: e.name,
    dtype: e.dtype,
    shape: e.shape,
    data: e.data ?? (async function* () {
      const step = 16 << 20
      for (let at = 0; at < e.byteLength; at += step) yield await readTensorBytes(e, at, Math.min(step, e.byteLength - at))
    }),
  })), { format: 'pt', producer: 'whittle' })
  const written = ['model.safetensors']
  // From the view, not the source file: a structural step (dropped layers or heads) updates it there.
  if (view.files.config) {
    await writeJson(path.join(dir, 'config.json'), view.files.config)
    written.push('config.json')
  }
  written.push(...(await copySidecars(view, dir)))
  return written
}

/** Re-opens the export and checks every tensor's bytes against the in-memory view. */
export async function verifyDenseSafetensors(view: ModelView, dir: string): Promise<void> {
  const file = path.join(dir, 'model.safetensors')
  const reopened = await openModelFiles(file)
  try {
    await compareTensors(view, reopened.tensors, dir)
  } finally {
    closeFile(file) // the folder is about to be renamed; drop the cached handle
  }
}

async function compareTensors(view: ModelView, written: TensorEntry[], dir: string): Promise<void> {
  const reopened = { tensors: written }
  const byName = new Map(reopened.tensors.map((t) => [t.name, t]))
  for (const t of view.files.tensors) {
    const want = view.entry(t.name)
    const got = byName.get(t.name)
    if (!got || got.dtype !== want.dtype || got.byteLength !== want.byteLength) {
      throw new WhittleError('format', dir, `verification failed: tensor ${t.name} was not written as expected`)
    }
    const step = 16 << 20
    for (let at = 0; at < want.byteLength; at += step) {
      const n = Math.min(step, want.byteLength - at)
      const a = await readTensorBytes(want, at, n)
      const b = await readTensorBytes(got, at, n)
      if (Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.length), Buffer.from(b.buffer, b.byteOffset, b.length)) !== 0) {
        throw new WhittleError('format', dir, `verification failed: tensor ${t.name} differs after writing`)
      }
    }
  }
}
