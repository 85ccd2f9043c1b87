// GGUF export of a Llama model (HF safetensors or GGUF source, with any in-memory compressed weights):
// llama.cpp names and metadata, q/k rows permuted into llama.cpp's RoPE order, the tokenizer converted,
// each 2-D tensor quantized byte-exactly as llama-quantize would (or stored in the closest type that fits
// its rows), written to a temporary file, re-read and checked tensor by tensor, and only then named.

import { createHash } from 'node:crypto'
import { stat } from 'node:fs/promises'
import path from 'node:path'
import { WhittleError } from '../../errors'
import { alreadyExistsError } from '../../io/destination-lock'
import type { TensorEntry } from '../../formats/types'
import type { TensorRole } from '../../../contract/api'
import { readTensorBytes } from '../../formats/read'
import { writeGguf, type GgufTensorInput } from '../../formats/gguf-writer'
import type { LoadedModel } from '../../model/loaded-model'
import { decodeTensorF32 } from '../../pool/decode-tensor'
import type { WorkerPool } from '../../pool/worker-pool'
import { compatibleGgufType, ggufRowBytes, quantizeTensorGguf } from '../../compress/gguf-types/quantize-tensor'
import { hfToGgufRows } from '../../arch/rope-permute'
import { ggufLlamaName, permuteRowBytes, rowSources } from './names'
import { LLAMA_FILE_TYPE, policyType, type GgufExportType, type GgufTensorType } from './type-policy'
import { checkLlamaSource, llamaMetadata } from './llama-source'
import { tokenizerKvsFromGguf, tokenizerKvsFromHf } from './tokenizer-kv'
import { encodeBf16, f32Checksum } from './encode'
import { verifyGgufExport, type IntendedTensor } from './verify-gguf'

export interface GgufExportOptions {
  type: GgufExportType
  /** general.name; defaults to the source's name. */
  name?: string
  onProgress?: (fraction: number, message: string) => void
  signal?: AbortSignal
}

export interface GgufExportTensor {
  name: string
  type: GgufTensorType
  /** Why `type` differs from what the export type asked for (a row not a whole number of blocks). */
  fallback?: string
  /**
   * The stored values decode to exactly the source's (or the compressed model's) weights: true for
   * F32, lossless copies, and weights that were already fake-quantized to this type.
   */
  exact: boolean
}

export interface GgufExportReport {
  file: string
  tensors: GgufExportTensor[]
  /** Tensors with no slot in a GGUF Llama (e.g. rotary inv_freq buffers), left out. */
  skipped: string[]
  bytes: number
}

/** Order llama.cpp's converter writes a block's tensors in; everything else follows its source order. */
const ROLE_ORDER = ['q', 'k', 'v', 'o', 'gate', 'up', 'down', 'attn_norm', 'ffn_norm']

interface PlannedTensor {
  ggufName: string
  entry: TensorEntry
  role: TensorRole
  layer: number | null
  rows: number
  cols: number
  /** q/k heads for the row permutation, or 0 for none. */
  permuteHeads: number
}

function planTensors(model: LoadedModel, permuteQk: boolean): { planned: PlannedTensor[]; skipped: string[] } {
  const planned: PlannedTensor[] = []
  const skipped: string[] = []
  for (const t of model.files.tensors) {
    const place = model.arch.places[t.name]
    const ggufName = place ? ggufLlamaName(place) : null
    if (!place || !ggufName) {
      skipped.push(t.name)
      continue
    }
    const entry = model.entry(t.name)
    const cols = entry.shape.length === 0 ? 1 : entry.shape[entry.shape.length - 1]
    const rows = entry.shape.slice(0, -1).reduce((a, b) => a * b, 1)
    const heads = place.role === 'q' ? model.arch.heads : place.role === 'k' ? model.arch.kvHeads : 0
    planned.push({ ggufName, entry, role: place.role, layer: place.layer, rows, cols, permuteHeads: permuteQk ? heads : 0 })
  }
  // A tied model has no lm_head; llama.cpp's converter (as in stories260K.gguf) still stores output.weight.
  if (!planned.some((p) => p.role === 'lm_head')) {
    const embed = planned.find((p) => p.role === 'embed')
    if (embed) planned.push({ ...embed, ggufName: 'output.weight', role: 'lm_head' })
  }
  const rank = (p: PlannedTensor): number => p.role === 'embed' ? -1 : p.layer !== null ? p.layer * 100 + ROLE_ORDER.indexOf(p.role) : p.role === 'final_norm' ? 1e9 : 1e9 + 1
  planned.sort((a, b) => rank(a) - rank(b))
  return { planned, skipped }
}

async function refuseExisting(outFile: string, inputs: string[]): Promise<void> {
  const abs = path.resolve(outFile)
  if (inputs.some((i) => path.resolve(i) === abs)) throw new WhittleError('validation', outFile, 'the export would overwrite its own input; choose another file')
  // An early, friendly refusal; the writer checks again once it holds the destination.
  if (await stat(abs).then(() => true, () => false)) throw alreadyExistsError(outFile, 'file')
}

function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex')
}

function sameF32(a: Float32Array, b: Float32Array): boolean {
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length)
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length)
  if (x.length !== y.length) return false
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false
  return true
}

/** One tensor's stored bytes, plus what verification should find when it decodes them. */
async function encodeTensor(pool: WorkerPool, p: PlannedTensor, wanted: GgufTensorType): Promise<{ data: Uint8Array; tensor: GgufExportTensor; checksum: number | null }> {
  const choice = wanted === 'BF16' ? { type: 'BF16' as const } : compatibleGgufType(wanted, p.cols)
  const fallback = 'fallback' in choice && choice.fallback ? { fallback: choice.fallback } : {}
  if (p.entry.dtype === choice.type) {
    // Same encoding as the source: move bytes (GGUF blocks never span rows, so whole rows can be moved).
    let data = await readTensorBytes(p.entry, 0, p.entry.byteLength)
    if (p.permuteHeads > 0) data = permuteRowBytes(data, rowSources(p.rows, p.permuteHeads, hfToGgufRows))
    return { data, tensor: { name: p.ggufName, type: choice.type, ...fallback, exact: true }, checksum: null }
  }
  let w = await decodeTensorF32(pool, p.entry)
  if (p.permuteHeads > 0) w = hfToGgufRows(w, p.rows, p.cols, p.permuteHeads)
  if (choice.type === 'BF16') {
    const { bytes, decoded } = encodeBf16(w)
    return { data: bytes, tensor: { name: p.ggufName, type: 'BF16', exact: sameF32(decoded, w) }, checksum: f32Checksum(decoded) }
  }
  // Quantize to the requested type: quantizeTensorGguf applies (and explains) the same fallback.
  const q = quantizeTensorGguf(pool, w, p.rows, p.cols, wanted as Exclude<GgufTensorType, 'BF16'>)
  return {
    data: q.bytes,
    tensor: { name: p.ggufName, type: q.type, ...(q.fallback ? { fallback: q.fallback } : {}), exact: sameF32(q.dequantized, w) },
    checksum: f32Checksum(q.dequantized),
  }
}

export async function exportGguf(pool: WorkerPool, model: LoadedModel, outFile: string, options: GgufExportOptions): Promise<GgufExportReport> {
  const file = path.resolve(outFile)
  const { permuteQk } = checkLlamaSource(model)
  const fileType = LLAMA_FILE_TYPE[options.type]
  if (fileType === undefined) throw new WhittleError('validation', null, `unknown GGUF export type ${String(options.type)}`)
  await refuseExisting(file, [model.files.path, ...model.files.files])
  const { planned, skipped } = planTensors(model, permuteQk)
  const progress = options.onProgress ?? (() => {})

  // Types (and so sizes and offsets) are known before any tensor is encoded; each tensor is then encoded
  // when the writer reaches it and dropped after, so memory holds one tensor, not the model.
  const tensors: GgufTensorInput[] = []
  const intended: IntendedTensor[] = []
  const report: GgufExportTensor[] = []
  for (const [i, p] of planned.entries()) {
    const wanted = policyType(options.type, { role: p.role, layer: p.layer, rank: p.entry.shape.length }, model.arch.layers)
    const type = wanted === 'BF16' ? 'BF16' : compatibleGgufType(wanted, p.cols).type
    const dims = [...p.entry.shape].reverse()
    const byteLength = type === 'BF16' ? p.rows * p.cols * 2 : p.rows * ggufRowBytes(type, p.cols)
    tensors.push({
      name: p.ggufName, type, dims,
      data: {
        byteLength,
        async produce() {
          if (options.signal?.aborted) throw new WhittleError('cancelled', file, 'export cancelled')
          progress(i / (planned.length + 1), `encoding ${p.ggufName}`)
          const { data, tensor, checksum } = await encodeTensor(pool, p, wanted)
          if (tensor.type !== type) throw new WhittleError('format', file, `${p.ggufName}: encoded as ${tensor.type}, planned as ${type}`)
          intended.push({ name: p.ggufName, type: tensor.type, dims, sha256: sha256(data), checksum })
          report.push(tensor)
          return data
        },
      },
    })
  }
  const quantized = tensors.some((t) => !['F32', 'F16', 'BF16'].includes(String(t.type)))
  const tokenizer = model.files.format === 'gguf'
    ? await tokenizerKvsFromGguf(model.files.files[0])
    : await tokenizerKvsFromHf(model.files, model.arch.vocabSize)
  const kv = [...llamaMetadata(model, fileType, quantized, options.name), ...tokenizer]

  if (options.signal?.aborted) throw new WhittleError('cancelled', file, 'export cancelled')
  progress(planned.length / (planned.length + 1), 'writing')
  // Exclusive: a second export to this path fails at once rather than replacing this one's file. The
  // temporary file is re-read and checked before it gets the real name, so a kill at any moment leaves
  // either nothing or a verified file at `file`.
  const bytes = await writeGguf(file, { kv, tensors }, {
    exclusive: true,
    verify: async (temp) => {
      progress(planned.length / (planned.length + 1), 'verifying')
      await verifyGgufExport(temp, intended, pool, file)
    },
  })
  progress(1, 'written and verified')
  return { file, tensors: report, skipped, bytes }
}
