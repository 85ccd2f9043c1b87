// GGUF export of a Llama model (HF safetensors or GGUF source, with any in-memory compressed weights):
// llama.cpp names and metadata, q/k rows permuted into llama.cpp's RoPE order, the tokenizer converted,
// each 2-D tensor quantized byte-exactly as llama-quantize would (or stored in the closest type that fits
// its rows), written to a temporary file, re-read and checked tensor by tensor, and only then named.

import { stat } from 'node:fs/promises'
import path from 'node:path'
import { WhittleError } from '../../errors'
import { throwIfCancelled } from '../../jobs/cancel'
import { alreadyExistsError } from '../../io/destination-lock'
import type { TensorEntry } from '../../formats/types'
import type { TensorRole } from '../../../contract/api'
import { readTensorBytes } from '../../formats/read'
import { writeGguf, type GgufKv, type GgufTensorInput } from '../../formats/gguf-writer'
import type { LoadedModel } from '../../model/loaded-model'
import { decodeTensorF32 } from '../../pool/decode-tensor'
import type { WorkerPool } from '../../pool/worker-pool'
import {
  compatibleGgufType,
  ggufRowBytes,
  quantizeTensorGguf,
  usesImportance,
} from '../../compress/gguf-types/quantize-tensor'
import {
  quantizeEntryGgufParallel,
  quantizeTensorGgufParallel,
  type GgufEncoded,
} from '../../compress/gguf-types/quantize-tensor-parallel'
import { hfToGgufRows } from '../../arch/rope-permute'
import { ggufLlamaName, permuteRowBytes, rowSources } from './names'
import {
  LLAMA_FILE_TYPE,
  planGgufTypes,
  type GgufExportType,
  type GgufTensorType,
  type PolicyTensor,
} from './type-policy'
import type { GgufTensorPlan, GgufTypeFlags, GgufTypeRule } from '../../../contract/gguf-export-types'
import { checkLlamaSource, llamaMetadata } from './llama-source'
import { tokenizerKvsFromGguf, tokenizerKvsFromHf } from './tokenizer-kv'
import { encodeBf16Ggml } from '../../numerics/float-encodings'
import { f32Checksum } from './encode'
import { verifyGgufExport, type IntendedTensor } from './verify-gguf'
import { requantizeError, requantizeLossNote } from './requantize-loss'
import { hashBytes, tensorCheck, type TensorCheck } from './tensor-hashes'
import { importanceFor, type ImatrixSource } from '../../formats/imatrix-data'
import type { GgufKeptTensor } from '../../compress/gguf-types/kept-bytes'
import { keptGgufBytes } from './kept-tensor'

/** The export type and llama-quantize's type-level flags (--pure, --output-tensor-type, …). */
export interface GgufExportOptions extends GgufTypeFlags {
  type: GgufExportType
  /** general.name; defaults to the source's name. */
  name?: string
  /**
   * Importance matrix (llama-quantize --imatrix): each tensor it has an entry for, by GGUF name, is
   * quantized with those importances; the others (token_embd, output) without, as llama-quantize does.
   */
  imatrix?: ImatrixSource | null
  /**
   * The bytes a recipe's gguf step produced, by tensor name: written as they are where they are in the
   * planned type and decode to the in-memory weights (./kept-tensor.ts), instead of quantizing again.
   */
  keptBytes?: ReadonlyMap<string, GgufKeptTensor>
  onProgress?: (fraction: number, message: string) => void
  signal?: AbortSignal
}

export interface GgufExportTensor {
  name: string
  type: GgufTensorType
  /** Why `type` differs from what the export type asked for (a row not a whole number of blocks). */
  fallback?: string
  /** The policy's rule that chose the type (type-policy), and the --tensor-type pattern when one did. */
  rule: GgufTypeRule
  pattern?: string
  /** The source tensor's block type when it was already quantized and is quantized again (--allow-requantize). */
  requantizedFrom?: string
  /** For a re-quantized tensor: ‖written − source‖ / ‖source‖ over the decoded values, the second rounding's loss (requantize-loss.ts). */
  requantizeError?: number
  /** Quantized with the importance matrix's entry for this tensor (types that ignore importances, as Q8_0 and F16 do, never are). */
  imatrix?: boolean
  /**
   * The stored values decode to exactly the source's (or the compressed model's) weights: true for
   * F32, lossless copies, and weights that were already fake-quantized to this type.
   */
  exact: boolean
  /** How the written file's tensor was checked (tensor-hashes.ts): its bytes' hash, and its values where needed. */
  check: TensorCheck
  /** The bytes are the recipe's gguf step's, written as they are (not quantized again). */
  kept?: boolean
}

export interface GgufExportReport {
  file: string
  tensors: GgufExportTensor[]
  /** Tensors with no slot in a GGUF Llama (e.g. rotary inv_freq buffers), left out. */
  skipped: string[]
  bytes: number
  /** What the user should know, e.g. tensors re-quantized from a block type (a second rounding loss). */
  warnings: string[]
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
    planned.push({
      ggufName,
      entry,
      role: place.role,
      layer: place.layer,
      rows,
      cols,
      permuteHeads: permuteQk ? heads : 0,
    })
  }
  // A tied model has no lm_head; llama.cpp's converter (as in stories260K.gguf) still stores output.weight.
  if (!planned.some((p) => p.role === 'lm_head')) {
    const embed = planned.find((p) => p.role === 'embed')
    if (embed) planned.push({ ...embed, ggufName: 'output.weight', role: 'lm_head' })
  }
  const rank = (p: PlannedTensor): number =>
    p.role === 'embed'
      ? -1
      : p.layer !== null
        ? p.layer * 100 + ROLE_ORDER.indexOf(p.role)
        : p.role === 'final_norm'
          ? 1e9
          : 1e9 + 1
  planned.sort((a, b) => rank(a) - rank(b))
  return { planned, skipped }
}

async function refuseExisting(outFile: string, inputs: string[]): Promise<void> {
  const abs = path.resolve(outFile)
  if (inputs.some((i) => path.resolve(i) === abs))
    throw new WhittleError('validation', outFile, 'the export would overwrite its own input; choose another file')
  // An early, friendly refusal; the writer checks again once it holds the destination.
  if (
    await stat(abs).then(
      () => true,
      () => false,
    )
  )
    throw alreadyExistsError(outFile, 'file')
}

function sameF32(a: Float32Array, b: Float32Array): boolean {
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length)
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length)
  if (x.length !== y.length) return false
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false
  return true
}

function parallelResult(
  p: PlannedTensor,
  q: GgufEncoded,
  importance: Float32Array | null,
): { data: Uint8Array; tensor: Omit<GgufExportTensor, 'rule' | 'check'>; checksum: null } {
  const tensor = {
    name: p.ggufName,
    type: q.type,
    ...(q.fallback ? { fallback: q.fallback } : {}),
    ...(importance ? { imatrix: true } : {}),
    exact: q.exact,
  }
  return { data: q.bytes, tensor, checksum: null }
}

/** One tensor's stored bytes, plus what verification should find when it decodes them. */
async function encodeTensor(
  pool: WorkerPool,
  p: PlannedTensor,
  wanted: GgufTensorType,
  imatrix: ImatrixSource | null,
  keptBytes: ReadonlyMap<string, GgufKeptTensor> | null,
): Promise<{ data: Uint8Array; tensor: Omit<GgufExportTensor, 'rule' | 'check'>; checksum: number | null }> {
  const choice = wanted === 'BF16' ? { type: 'BF16' as const } : compatibleGgufType(wanted, p.cols)
  const fallback = 'fallback' in choice && choice.fallback ? { fallback: choice.fallback } : {}
  const kept = keptBytes?.get(p.entry.name)
  const keptData = choice.type === 'BF16' ? null : await keptGgufBytes(pool, p, choice.type, kept)
  if (keptData && kept) {
    // Every kept type is a ggml type, whose bytes the verification's hash proves (tensor-hashes.ts).
    const tensor = { name: p.ggufName, type: choice.type, ...fallback, ...(kept.imatrix ? { imatrix: true } : {}) }
    return { data: keptData, tensor: { ...tensor, exact: true, kept: true }, checksum: null }
  }
  if (p.entry.dtype === choice.type) {
    // Same encoding as the source: move bytes (GGUF blocks never span rows, so whole rows can be moved).
    let data = await readTensorBytes(p.entry, 0, p.entry.byteLength)
    if (p.permuteHeads > 0) data = permuteRowBytes(data, rowSources(p.rows, p.permuteHeads, hfToGgufRows))
    return { data, tensor: { name: p.ggufName, type: choice.type, ...fallback, exact: true }, checksum: null }
  }
  // Values are decoded again at verification only for a packing whose bytes do not prove them.
  const decodeCheck = tensorCheck(choice.type) !== 'sha256'
  if (choice.type !== 'BF16' && !decodeCheck && p.permuteHeads === 0 && p.entry.shape.length === 2) {
    // The common path: read in blocks of rows (the embedding too, so memory does not grow with the
    // vocabulary) and quantized row-parallel across the workers, byte-identical to quantizeTensorGguf.
    const importance = imatrix && usesImportance(choice.type) ? importanceFor(imatrix, p.ggufName, p.cols) : null
    const storage = wanted as Exclude<GgufTensorType, 'BF16'>
    return parallelResult(p, await quantizeEntryGgufParallel(pool, p.entry, storage, { importance }), importance)
  }
  let w = await decodeTensorF32(pool, p.entry)
  if (p.permuteHeads > 0) w = hfToGgufRows(w, p.rows, p.cols, p.permuteHeads)
  if (choice.type === 'BF16') {
    const { bytes, decoded } = encodeBf16Ggml(w)
    return {
      data: bytes,
      tensor: { name: p.ggufName, type: 'BF16', exact: sameF32(decoded, w) },
      checksum: decodeCheck ? f32Checksum(decoded) : null,
    }
  }
  // Quantize to the requested type: the quantizers apply (and explain) the same fallback.
  // Importances are per input column, so the q/k row permutation above leaves them as they are.
  const importance = imatrix && usesImportance(choice.type) ? importanceFor(imatrix, p.ggufName, p.cols) : null
  const storage = wanted as Exclude<GgufTensorType, 'BF16'>
  if (!decodeCheck) {
    // Permuted q/k rows: row-parallel across the workers on the whole (small) tensor.
    return parallelResult(
      p,
      await quantizeTensorGgufParallel(pool, w, p.rows, p.cols, storage, { importance }),
      importance,
    )
  }
  const q = quantizeTensorGguf(pool, w, p.rows, p.cols, storage, { importance })
  return {
    data: q.bytes,
    tensor: {
      name: p.ggufName,
      type: q.type,
      ...(q.fallback ? { fallback: q.fallback } : {}),
      ...(importance ? { imatrix: true } : {}),
      exact: sameF32(q.dequantized, w),
    },
    checksum: f32Checksum(q.dequantized),
  }
}

/** What llama-quantize records about the importance matrix it used (quantize.imatrix.*). */
function imatrixKvs(source: ImatrixSource | null, quantized: boolean): GgufKv[] {
  if (!source || !quantized) return []
  const { imatrix } = source
  return [
    ...(source.file !== null ? [{ key: 'quantize.imatrix.file', type: 'string', value: source.file } as const] : []),
    ...(imatrix.datasets.length > 0
      ? [{ key: 'quantize.imatrix.dataset', type: 'string', value: imatrix.datasets[0] } as const]
      : []),
    { key: 'quantize.imatrix.entries_count', type: 'u32', value: imatrix.entries.size },
    { key: 'quantize.imatrix.chunks_count', type: 'u32', value: imatrix.chunkCount },
  ]
}

function policyTensors(planned: PlannedTensor[]): PolicyTensor[] {
  return planned.map((p) => ({
    name: p.ggufName,
    rank: p.entry.shape.length,
    rows: p.rows,
    cols: p.cols,
    sourceType: p.entry.dtype,
  }))
}

function typePlan(model: LoadedModel, planned: PlannedTensor[], options: GgufExportOptions): GgufTensorPlan[] {
  const { layers, heads, kvHeads } = model.arch
  return planGgufTypes(policyTensors(planned), { layers, heads, kvHeads, experts: 1 }, options)
}

/** Source dtypes that are not a quantization; a GGUF tensor in any other type is already quantized. */
const UNQUANTIZED_SOURCE = new Set(['F32', 'F16', 'BF16', 'F64'])

/**
 * Tensors that would be re-quantized: read from a GGUF in a block type and stored in another type. As
 * llama-quantize does, that is refused unless allowed; allowed, they are named in a warning.
 */
function requantized(
  model: LoadedModel,
  planned: PlannedTensor[],
  plans: GgufTensorPlan[],
  file: string,
  allow: boolean,
): { from: Map<string, string>; warnings: string[] } {
  const from = new Map<string, string>()
  if (model.files.format !== 'gguf') return { from, warnings: [] }
  planned.forEach((p, i) => {
    if (!UNQUANTIZED_SOURCE.has(p.entry.dtype) && p.entry.dtype !== plans[i].type) from.set(p.ggufName, p.entry.dtype)
  })
  if (from.size === 0) return { from, warnings: [] }
  const list =
    [...from]
      .slice(0, 4)
      .map(([n, t]) => `${n} (${t})`)
      .join(', ') + (from.size > 4 ? `, and ${from.size - 4} more` : '')
  if (!allow) {
    throw new WhittleError(
      'requantize',
      model.files.path,
      `${from.size} tensors are already quantized (${list}); re-quantizing them adds a second rounding loss to the first. Pass --allow-requantize (in the Export dialog: "allow re-quantizing") to do it anyway`,
    )
  }
  return {
    from,
    warnings: [
      `${file}: re-quantized ${from.size} tensors that were already quantized (${list}): their error is the source's rounding plus this one's`,
    ],
  }
}

/** A GGUF export's plan without writing anything (--dry-run): each tensor's type, rule and size. */
export function planGgufExport(
  model: LoadedModel,
  options: GgufExportOptions,
): { tensors: GgufTensorPlan[]; skipped: string[]; bytes: number } {
  const { permuteQk } = checkLlamaSource(model)
  const { planned, skipped } = planTensors(model, permuteQk)
  const tensors = typePlan(model, planned, options)
  return { tensors, skipped, bytes: tensors.reduce((n, t) => n + t.bytes, 0) }
}

export async function exportGguf(
  pool: WorkerPool,
  model: LoadedModel,
  outFile: string,
  options: GgufExportOptions,
): Promise<GgufExportReport> {
  const file = path.resolve(outFile)
  const { permuteQk } = checkLlamaSource(model)
  const fileType = LLAMA_FILE_TYPE[options.type]
  if (fileType === undefined)
    throw new WhittleError('validation', null, `unknown GGUF export type ${String(options.type)}`)
  await refuseExisting(file, [model.files.path, ...model.files.files])
  const { planned, skipped } = planTensors(model, permuteQk)
  const plans = typePlan(model, planned, options)
  const requant = requantized(model, planned, plans, file, options.allowRequantize ?? false)
  const progress = options.onProgress ?? (() => {})
  const keptBytes = options.keptBytes ?? null

  // Types (and so sizes and offsets) are known before any tensor is encoded; each tensor is then encoded
  // when the writer reaches it and dropped after, so memory holds one tensor, not the model.
  const tensors: GgufTensorInput[] = []
  const intended: IntendedTensor[] = []
  const report: GgufExportTensor[] = []
  for (const [i, p] of planned.entries()) {
    // The plan's type already fits the row (the policy applied llama.cpp's fallbacks).
    const plan = plans[i]
    const wanted = plan.type
    const type = wanted === 'BF16' ? 'BF16' : compatibleGgufType(wanted, p.cols).type
    const dims = [...p.entry.shape].reverse()
    const byteLength = type === 'BF16' ? p.rows * p.cols * 2 : p.rows * ggufRowBytes(type, p.cols)
    tensors.push({
      name: p.ggufName,
      type,
      dims,
      data: {
        byteLength,
        async produce() {
          throwIfCancelled(options.signal, file)
          progress(i / (planned.length + 1), `encoding ${p.ggufName}`)
          const encoded = await encodeTensor(pool, p, wanted, options.imatrix ?? null, keptBytes)
          const { data, checksum } = encoded
          const from = requant.from.get(p.ggufName)
          const tensor: GgufExportTensor = {
            ...encoded.tensor,
            check: checksum === null ? 'sha256' : 'sha256+decode',
            rule: plan.rule,
            ...(plan.pattern !== undefined ? { pattern: plan.pattern } : {}),
            ...(plan.fallback ? { fallback: plan.fallback.reason } : {}),
            ...(from ? { requantizedFrom: from, requantizeError: await requantizeError(pool, p, data, type) } : {}),
          }
          if (tensor.type !== type)
            throw new WhittleError('format', file, `${p.ggufName}: encoded as ${tensor.type}, planned as ${type}`)
          intended.push({ name: p.ggufName, type: tensor.type, dims, sha256: hashBytes(data), checksum })
          report.push(tensor)
          return data
        },
      },
    })
  }
  const quantized = tensors.some((t) => !['F32', 'F16', 'BF16'].includes(String(t.type)))
  const tokenizer =
    model.files.format === 'gguf'
      ? await tokenizerKvsFromGguf(model.files.files[0])
      : await tokenizerKvsFromHf(model.files, model.arch.vocabSize)
  const kv = [
    ...llamaMetadata(model, fileType, quantized, options.name),
    ...imatrixKvs(options.imatrix ?? null, quantized),
    ...tokenizer,
  ]

  throwIfCancelled(options.signal, file)
  progress(planned.length / (planned.length + 1), 'writing')
  // Exclusive: a second export to this path fails at once rather than replacing this one's file. The
  // temporary file is re-read and checked before it gets the real name, so a kill at any moment leaves
  // either nothing or a verified file at `file`.
  const bytes = await writeGguf(
    file,
    { kv, tensors },
    {
      exclusive: true,
      verify: async (temp) => {
        progress(planned.length / (planned.length + 1), 'verifying')
        await verifyGgufExport(temp, intended, pool, file)
      },
    },
  )
  progress(1, 'written and verified')
  const loss = requantizeLossNote(report.flatMap((t) => (t.requantizeError === undefined ? [] : [t.requantizeError])))
  return { file, tensors: report, skipped, bytes, warnings: requant.warnings.map((w) => w + loss) }
}
