// GPTQ checkpoint export (transformers / GPTQModel / vLLM load it): each quantized Linear becomes
// <module>.qweight / qzeros / scales / g_idx (+ an fp16 bias), every other tensor is stored as F16
// (integers as they are), and config.json gains a quantization_config (also written to
// quantize_config.json, which older loaders read). Written into a temporary folder, re-read, decoded
// and compared bit for bit with the in-memory fake-quant weights, then renamed into place.

import { copyFile, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { WhittleError } from '../errors'
import { openModelFiles } from '../formats/open'
import { decodeToF32, readTensorBytes, readTensorF32 } from '../formats/read'
import { writeSafetensors, type SafetensorsTensorInput } from '../formats/safetensors-writer'
import type { DType, TensorEntry } from '../formats/types'
import { closeFile } from '../io/ranged-file'
import type { ModelView } from '../model/model-view'
import { codesFromWeights, isSequentialGIdx, type UniformGridRecord } from '../compress/quant/record'
import { packedWords } from '../numerics/bit-fields'
import { f32ToF16Bits } from '../numerics/float-encodings'
import { dequantizeGptq, type GptqCheckpointFormat } from '../numerics/gptq-pack'
import { assertFreeDestination, writeFolderAtomically } from './atomic-folder'
import { packGptqLinear, validateRecord } from './gptq-record'

export interface GptqExportOptions {
  format: GptqCheckpointFormat
}

/** Files copied beside the weights when the source folder has them (config.json is rewritten instead). */
const SIDECARS = [
  'generation_config.json',
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'tokenizer.model',
]

const FLOAT_DTYPES: ReadonlySet<DType> = new Set(['F64', 'F32', 'F16', 'BF16'])

export interface UniformSettings {
  bits: number
  /** -1 for per-channel */
  groupSize: number
  sym: boolean
  /** Some Linear's g_idx is not the sequential grouping (act-order regrouped its columns). */
  actOrder: boolean
}

/** The one setting all records share (a checkpoint's quantization_config is global). */
export function uniformSettings(records: ReadonlyMap<string, UniformGridRecord>, where: string): UniformSettings {
  const all = [...records.values()]
  if (all.length === 0)
    throw new WhittleError(
      'validation',
      where,
      'no quantized Linear to export (the recipe quantized nothing with RTN or GPTQ)',
    )
  const first = all[0]
  const norm = (g: number): number => (g > 0 ? g : -1)
  for (const [name, r] of records) {
    if (r.bits !== first.bits || norm(r.groupSize) !== norm(first.groupSize) || r.sym !== first.sym) {
      throw new WhittleError(
        'unsupported',
        where,
        `${name} is quantized as ${r.bits} bits / group ${r.groupSize} / ${r.sym ? 'sym' : 'asym'}, others as ${first.bits} / ${first.groupSize} / ${first.sym ? 'sym' : 'asym'}; one checkpoint holds one setting`,
      )
    }
  }
  return {
    bits: first.bits,
    groupSize: norm(first.groupSize),
    sym: first.sym,
    actOrder: all.some((r) => !isSequentialGIdx(r.gIdx, r.groupSize)),
  }
}

/** Checks every record against the tensor it replaces. */
export function checkRecords(view: ModelView, records: ReadonlyMap<string, UniformGridRecord>, where: string): void {
  for (const [name, r] of records) {
    if (!name.endsWith('.weight'))
      throw new WhittleError('validation', where, `${name}: only Linear weights (".weight") can be packed`)
    const place = view.arch.places[name]
    if (!place) throw new WhittleError('not-found', where, `${name}: the model has no such tensor`)
    if (place.transposed)
      throw new WhittleError('unsupported', where, `${name}: Conv1D weights stored [in, out] cannot be packed yet`)
    const shape = view.entry(name).shape
    if (shape.length !== 2 || shape[0] !== r.rows || shape[1] !== r.cols) {
      throw new WhittleError(
        'validation',
        where,
        `${name}: the record is ${r.rows}×${r.cols}, the tensor is ${JSON.stringify(shape)}`,
      )
    }
    validateRecord(r, name)
  }
}

export function gptqQuantizationConfig(s: UniformSettings, format: GptqCheckpointFormat): Record<string, unknown> {
  return {
    quant_method: 'gptq',
    bits: s.bits,
    group_size: s.groupSize,
    desc_act: s.actOrder,
    sym: s.sym,
    checkpoint_format: format,
    pack_dtype: 'int32',
  }
}

export function sourceFolder(view: ModelView): string {
  return view.files.files.length > 0 ? path.dirname(view.files.files[0]) : view.files.path
}

/** Copies the tokenizer and generation files that exist; returns the names copied. */
export async function copySidecars(view: ModelView, dir: string): Promise<string[]> {
  const copied: string[] = []
  for (const name of SIDECARS) {
    try {
      await copyFile(path.join(sourceFolder(view), name), path.join(dir, name))
      copied.push(name)
    } catch {
      // optional file
    }
  }
  return copied
}

export async function writeJson(file: string, value: unknown): Promise<void> {
  await writeFile(file, JSON.stringify(value, null, 2) + '\n')
}

/** Chunks of a tensor's bytes, 16 MiB at a time, so a large embedding is never held whole. */
export function tensorChunks(e: TensorEntry): () => AsyncIterable<Uint8Array> {
  return async function* () {
    const step = 16 << 20
    for (let at = 0; at < e.byteLength; at += step)
      yield await readTensorBytes(e, at, Math.min(step, e.byteLength - at))
  }
}

/** A float tensor re-encoded as F16, streamed in whole elements. */
export function f16Chunks(e: TensorEntry): () => AsyncIterable<Uint8Array> {
  return async function* () {
    const size = e.dtype === 'F64' ? 8 : e.dtype === 'F32' ? 4 : 2
    const total = e.byteLength / size
    const perChunk = 1 << 20
    const f32 = new Float32Array(perChunk)
    for (let at = 0; at < total; at += perChunk) {
      const n = Math.min(perChunk, total - at)
      decodeToF32(e.dtype, await readTensorBytes(e, at * size, n * size), n, f32)
      const half = new Uint16Array(n)
      for (let i = 0; i < n; i++) half[i] = f32ToF16Bits(f32[i])
      yield new Uint8Array(half.buffer)
    }
  }
}

export function bytesOf(a: Int32Array | Uint16Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength)
}

/** Reads an I32 tensor of the re-opened export (copied: file bytes need not be 4-aligned in memory). */
export async function readInt32(e: TensorEntry): Promise<Int32Array> {
  const b = await readTensorBytes(e, 0, e.byteLength)
  return new Int32Array(b.slice().buffer)
}

async function readUint16(e: TensorEntry): Promise<Uint16Array> {
  const b = await readTensorBytes(e, 0, e.byteLength)
  return new Uint16Array(b.slice().buffer)
}

export function moduleOf(weightName: string): string {
  return weightName.slice(0, -'.weight'.length)
}

/** Writes model.safetensors, config.json, quantize_config.json and the sidecars into dir. */
export async function writeGptq(
  view: ModelView,
  records: ReadonlyMap<string, UniformGridRecord>,
  dir: string,
  options: GptqExportOptions,
): Promise<string[]> {
  if (view.files.format !== 'safetensors')
    throw new WhittleError('unsupported', view.files.path, 'GPTQ export needs a safetensors source')
  checkRecords(view, records, dir)
  const settings = uniformSettings(records, dir)
  const tensors: SafetensorsTensorInput[] = []
  for (const t of view.files.tensors) {
    const r = records.get(t.name)
    if (r) {
      // Packed one Linear at a time, when the writer reaches it; the codes come from the weights.
      const module = moduleOf(t.name)
      const packed = async (): Promise<ReturnType<typeof packGptqLinear>> =>
        packGptqLinear(codesFromWeights(r, await readTensorF32(view.entry(t.name)), t.name), options.format, t.name)
      const groups = r.scales.length / r.rows
      let cache: ReturnType<typeof packGptqLinear> | null = null
      const part = (pick: (p: ReturnType<typeof packGptqLinear>) => Int32Array | Uint16Array, last: boolean) =>
        async function* (): AsyncIterable<Uint8Array> {
          cache ??= await packed()
          const bytes = bytesOf(pick(cache))
          if (last) cache = null
          yield bytes
        }
      tensors.push(
        {
          name: `${module}.qweight`,
          dtype: 'I32',
          shape: [packedWords(r.cols, r.bits), r.rows],
          data: part((p) => p.qweight, false),
        },
        {
          name: `${module}.qzeros`,
          dtype: 'I32',
          shape: [groups, packedWords(r.rows, r.bits)],
          data: part((p) => p.qzeros, false),
        },
        { name: `${module}.scales`, dtype: 'F16', shape: [groups, r.rows], data: part((p) => p.scales, false) },
        { name: `${module}.g_idx`, dtype: 'I32', shape: [r.cols], data: part((p) => p.gIdx, true) },
      )
      continue
    }
    const e = view.entry(t.name)
    tensors.push(
      FLOAT_DTYPES.has(e.dtype)
        ? { name: e.name, dtype: 'F16', shape: e.shape, data: f16Chunks(e) }
        : { name: e.name, dtype: e.dtype, shape: e.shape, data: tensorChunks(e) },
    )
  }
  await writeSafetensors(path.join(dir, 'model.safetensors'), tensors, { format: 'pt', producer: 'whittle' })
  const quantization = gptqQuantizationConfig(settings, options.format)
  await writeJson(path.join(dir, 'config.json'), {
    ...(view.files.config ?? {}),
    torch_dtype: 'float16',
    quantization_config: quantization,
  })
  await writeJson(path.join(dir, 'quantize_config.json'), quantization)
  return ['model.safetensors', 'config.json', 'quantize_config.json', ...(await copySidecars(view, dir))]
}

/** Compares two f32 arrays bit for bit (so −0 ≠ 0 and NaN payloads count). */
export function sameBits(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return 0
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length)
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length)
  for (let i = 0; i < ua.length; i++) if (ua[i] !== ub[i]) return i
  return -1
}

/** Re-opens the export, decodes every packed Linear and checks it equals the view's weights exactly. */
export async function verifyGptq(
  view: ModelView,
  records: ReadonlyMap<string, UniformGridRecord>,
  dir: string,
  options: GptqExportOptions,
): Promise<void> {
  const file = path.join(dir, 'model.safetensors')
  const reopened = await openModelFiles(file)
  try {
    const byName = new Map(reopened.tensors.map((t) => [t.name, t]))
    const need = (name: string, dtype: DType, shape: number[]): TensorEntry => {
      const e = byName.get(name)
      if (!e || e.dtype !== dtype || JSON.stringify(e.shape) !== JSON.stringify(shape)) {
        throw new WhittleError(
          'format',
          dir,
          `verification failed: ${name} is missing or not ${dtype} ${JSON.stringify(shape)}`,
        )
      }
      return e
    }
    for (const t of view.files.tensors) {
      const r = records.get(t.name)
      if (!r) {
        const e = view.entry(t.name)
        need(t.name, FLOAT_DTYPES.has(e.dtype) ? 'F16' : e.dtype, e.shape)
        continue
      }
      const module = moduleOf(t.name)
      const groups = r.scales.length / r.rows
      const got = dequantizeGptq(
        {
          qweight: await readInt32(need(`${module}.qweight`, 'I32', [packedWords(r.cols, r.bits), r.rows])),
          qzeros: await readInt32(need(`${module}.qzeros`, 'I32', [groups, packedWords(r.rows, r.bits)])),
          scales: await readUint16(need(`${module}.scales`, 'F16', [groups, r.rows])),
          gIdx: await readInt32(need(`${module}.g_idx`, 'I32', [r.cols])),
        },
        r.rows,
        r.cols,
        r.bits,
        options.format,
      )
      const want = await readTensorF32(view.entry(t.name))
      const at = sameBits(got, want)
      if (at >= 0) {
        throw new WhittleError(
          'format',
          dir,
          `verification failed: ${module} decodes to ${got[at]} at element ${at}, the compressed model has ${want[at]} (were its scales fp16-rounded?)`,
        )
      }
    }
  } finally {
    closeFile(file) // the folder is about to be renamed; drop the cached handle
  }
}

/** Writes a verified GPTQ checkpoint folder at dest (which must not exist). Returns its absolute path. */
export async function exportGptq(
  view: ModelView,
  records: ReadonlyMap<string, UniformGridRecord>,
  dest: string,
  options: GptqExportOptions,
): Promise<string> {
  await assertFreeDestination(dest, [view.files.path, ...view.files.files])
  return writeFolderAtomically(
    dest,
    async (dir) => {
      await writeGptq(view, records, dir, options)
    },
    (dir) => verifyGptq(view, records, dir, options),
  )
}
