// The simplest export: a dense safetensors checkpoint holding the compressed weights (the dequantized or
// pruned values) and every other tensor as it was, in the dtype the model holds them or converted to
// one float dtype; sharded with model.safetensors.index.json past a size (HF's 5 GB by default); beside
// config.json (from the view, so structural steps carry through), the generation config and tokenizer.
// Verified by re-reading every written tensor.

import path from 'node:path'
import { WhittleError } from '../errors'
import { openModelFiles } from '../formats/open'
import { readTensorBytes, readTensorF32 } from '../formats/read'
import { writeSafetensors, type SafetensorsTensorInput } from '../formats/safetensors-writer'
import type { DType, TensorEntry } from '../formats/types'
import { closeFile } from '../io/ranged-file'
import type { ModelView } from '../model/model-view'
import { encodeHalf } from '../numerics/float-encodings'
import { copySidecars, writeJson } from './gptq-export'

export type DenseDType = 'F32' | 'F16' | 'BF16'

export interface DenseOptions {
  /** Convert every float tensor to this dtype (default: keep each tensor's dtype). */
  dtype?: DenseDType
  /** Shard past this many bytes (default 5 GB, as transformers' save_pretrained). */
  shardBytes?: number
}

export const DEFAULT_SHARD_BYTES = 5_000_000_000
const FLOATS: ReadonlySet<DType> = new Set(['F64', 'F32', 'F16', 'BF16'])
const TORCH_NAMES: Record<DenseDType, string> = { F32: 'float32', F16: 'float16', BF16: 'bfloat16' }
const CHUNK = 16 << 20

function targetDType(e: TensorEntry, o: DenseOptions): DType {
  return o.dtype && FLOATS.has(e.dtype) ? o.dtype : e.dtype
}

function numel(e: TensorEntry): number {
  return e.shape.reduce((a, b) => a * b, 1)
}

/** The bytes a tensor is written as: its own, or its values converted to the target float dtype. */
function tensorChunks(e: TensorEntry, dtype: DType): () => AsyncIterable<Uint8Array> {
  if (dtype === e.dtype) {
    return async function* () {
      for (let at = 0; at < e.byteLength; at += CHUNK)
        yield await readTensorBytes(e, at, Math.min(CHUNK, e.byteLength - at))
    }
  }
  return async function* () {
    const values = await readTensorF32(e)
    if (dtype === 'F32') yield new Uint8Array(values.buffer, values.byteOffset, values.byteLength)
    else {
      const out = new Uint16Array(values.length)
      encodeHalf(values, dtype as 'F16' | 'BF16', out)
      yield new Uint8Array(out.buffer)
    }
  }
}

function writtenBytes(e: TensorEntry, dtype: DType): number {
  return dtype === e.dtype ? e.byteLength : numel(e) * (dtype === 'F32' ? 4 : 2)
}

/** Tensors in order, cut into shards of at most `limit` bytes (a bigger tensor gets a shard to itself). */
export function planShards(sizes: { name: string; bytes: number }[], limit: number): string[][] {
  const shards: string[][] = [[]]
  let used = 0
  for (const t of sizes) {
    if (used > 0 && used + t.bytes > limit) {
      shards.push([])
      used = 0
    }
    shards[shards.length - 1].push(t.name)
    used += t.bytes
  }
  return shards
}

function shardName(i: number, n: number): string {
  return n === 1
    ? 'model.safetensors'
    : `model-${String(i + 1).padStart(5, '0')}-of-${String(n).padStart(5, '0')}.safetensors`
}

/** Bytes the export will take (weights; the small JSON and tokenizer files aside). */
export function estimateDenseBytes(view: ModelView, options: DenseOptions = {}): number {
  return view.files.tensors.reduce((a, t) => {
    const e = view.entry(t.name)
    return a + writtenBytes(e, targetDType(e, options))
  }, 0)
}

export async function writeDenseSafetensors(
  view: ModelView,
  dir: string,
  options: DenseOptions = {},
): Promise<string[]> {
  if (view.files.format !== 'safetensors') {
    throw new WhittleError(
      'unsupported',
      view.files.path,
      'dense safetensors export needs a safetensors source (GGUF sources export as GGUF)',
    )
  }
  const entries = view.files.tensors.map((t) => view.entry(t.name))
  const byName = new Map(entries.map((e) => [e.name, e]))
  const shards = planShards(
    entries.map((e) => ({ name: e.name, bytes: writtenBytes(e, targetDType(e, options)) })),
    options.shardBytes ?? DEFAULT_SHARD_BYTES,
  )
  const written: string[] = []
  const weightMap: Record<string, string> = {}
  let total = 0
  for (const [i, names] of shards.entries()) {
    const file = shardName(i, shards.length)
    const inputs: SafetensorsTensorInput[] = names.map((name) => {
      const e = byName.get(name)!
      const dtype = targetDType(e, options)
      total += writtenBytes(e, dtype)
      Object.defineProperty(weightMap, name, { value: file, enumerable: true, writable: true, configurable: true }) // a tensor may be named __proto__
      return { name, dtype, shape: e.shape, data: dtype === e.dtype && e.data ? e.data : tensorChunks(e, dtype) }
    })
    await writeSafetensors(path.join(dir, file), inputs, { format: 'pt', producer: 'whittle' })
    written.push(file)
  }
  if (shards.length > 1) {
    await writeJson(path.join(dir, 'model.safetensors.index.json'), {
      metadata: { total_size: total },
      weight_map: weightMap,
    })
    written.push('model.safetensors.index.json')
  }
  if (view.files.config) {
    const config = options.dtype ? { ...view.files.config, torch_dtype: TORCH_NAMES[options.dtype] } : view.files.config
    await writeJson(path.join(dir, 'config.json'), config)
    written.push('config.json')
  }
  written.push(...(await copySidecars(view, dir)))
  return written
}

/** Re-opens the export (one file or the shard index) and checks every tensor's bytes against the view's. */
export async function verifyDenseSafetensors(view: ModelView, dir: string, options: DenseOptions = {}): Promise<void> {
  const entries = view.files.tensors.map((t) => view.entry(t.name))
  const sharded =
    planShards(
      entries.map((e) => ({ name: e.name, bytes: writtenBytes(e, targetDType(e, options)) })),
      options.shardBytes ?? DEFAULT_SHARD_BYTES,
    ).length > 1
  const file = path.join(dir, sharded ? 'model.safetensors.index.json' : 'model.safetensors')
  const reopened = await openModelFiles(file)
  try {
    const byName = new Map(reopened.tensors.map((t) => [t.name, t]))
    for (const want of entries) {
      const dtype = targetDType(want, options)
      const got = byName.get(want.name)
      if (!got || got.dtype !== dtype || got.byteLength !== writtenBytes(want, dtype)) {
        throw new WhittleError('format', dir, `verification failed: tensor ${want.name} was not written as expected`)
      }
      let at = 0
      for await (const chunk of tensorChunks(want, dtype)()) {
        const back = await readTensorBytes(got, at, chunk.length)
        if (
          Buffer.compare(
            Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length),
            Buffer.from(back.buffer, back.byteOffset, back.length),
          ) !== 0
        ) {
          throw new WhittleError(
            'format',
            dir,
            `verification failed: tensor ${want.name} differs after writing (bytes ${at}–${at + chunk.length})`,
          )
        }
        at += chunk.length
      }
    }
  } finally {
    for (const f of reopened.files) closeFile(f) // the folder is about to be renamed; drop the cached handles
  }
}
