// A model seen through replacements of some tensors (compressed weights, folded norms).
// The file-backed original is untouched; readers of the view get the replacement values as F32.
// Replacements live in memory until they exceed a budget; then they spill to a temporary file that
// is read by byte range like any checkpoint, so compressing a large model does not hold all of its
// compressed weights in memory at once.

import { randomBytes } from 'node:crypto'
import { unlinkSync } from 'node:fs'
import { open } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import type { TensorEntry } from '../formats/types'
import { closeFile } from '../io/ranged-file'
import type { LoadedModel } from './loaded-model'

export interface ModelView extends LoadedModel {
  /** Replaces a tensor's values (same shape) with f32 data. */
  replace(name: string, values: Float32Array): void
  /** Replacements still held in memory (spilled ones are read through entry()). */
  replaced(): ReadonlyMap<string, Float32Array>
  /** Names of every replaced tensor. */
  replacedNames(): ReadonlySet<string>
  /** Moves in-memory replacements to the spill file once they exceed `budgetBytes`. */
  spillIfOver(budgetBytes: number): Promise<void>
  /** Deletes the spill file (the view must not be read afterwards). */
  dispose(): void
}

/**
 * Replacements above this many bytes spill to disk (checked after each group by the pipeline). Small, since
 * what stays in memory sits beside the next group's work: at 512 MiB a 7B layer carried up to 436 MB of
 * the last one's weights into its gate/up GPTQ, its peak (issue #15). stories260K (1 MB) never spills.
 */
export const REPLACEMENT_MEMORY_BUDGET = 128 << 20

const spillFiles = new Set<string>()
process.once('exit', () => {
  for (const f of spillFiles) {
    try {
      unlinkSync(f)
    } catch {
      // already gone
    }
  }
})

export function withReplacements(model: LoadedModel): ModelView {
  const inMemory = new Map<string, Float32Array>()
  const names = new Set<string>()
  const entries = new Map<string, TensorEntry>()
  let spillPath: string | null = null
  let spillEnd = 0
  const view: ModelView = {
    ...model,
    entry(name: string): TensorEntry {
      return entries.get(name) ?? model.entry(name)
    },
    replace(name: string, values: Float32Array): void {
      const orig = model.entry(name)
      const numel = orig.shape.reduce((a, b) => a * b, 1)
      if (values.length !== numel)
        throw new Error(`replacement for ${name} has ${values.length} values, the tensor has ${numel}`)
      inMemory.set(name, values)
      names.add(name)
      const data = new Uint8Array(values.buffer, values.byteOffset, values.byteLength)
      // The replacement is plain f32: the original's packed storage no longer describes it.
      entries.set(name, {
        ...orig,
        dtype: 'F32',
        byteLength: data.byteLength,
        data,
        unpack: undefined,
        packed: undefined,
      })
    },
    replaced: () => inMemory,
    replacedNames: () => names,
    async spillIfOver(budgetBytes: number): Promise<void> {
      let bytes = 0
      for (const v of inMemory.values()) bytes += v.byteLength
      if (bytes <= budgetBytes) return
      spillPath ??= path.join(os.tmpdir(), `whittle-spill-${process.pid}-${randomBytes(4).toString('hex')}.bin`)
      spillFiles.add(spillPath)
      const handle = await open(spillPath, 'a')
      try {
        for (const [name, values] of inMemory) {
          const data = new Uint8Array(values.buffer, values.byteOffset, values.byteLength)
          await handle.write(data, 0, data.length, spillEnd)
          const orig = model.entry(name)
          entries.set(name, {
            ...orig,
            dtype: 'F32',
            file: spillPath,
            offset: spillEnd,
            byteLength: data.length,
            unpack: undefined,
            packed: undefined,
          })
          spillEnd += data.length
        }
      } finally {
        await handle.close()
      }
      closeFile(spillPath) // the read cache must not keep a handle that predates these writes
      inMemory.clear()
    },
    dispose(): void {
      if (!spillPath) return
      closeFile(spillPath)
      try {
        unlinkSync(spillPath)
      } catch {
        // already gone
      }
      spillFiles.delete(spillPath)
      spillPath = null
    },
  }
  view.files = { ...model.files, tensors: model.files.tensors.map((t) => view.entry(t.name)) }
  return view
}
