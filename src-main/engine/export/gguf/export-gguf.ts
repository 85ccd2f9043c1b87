// GGUF export of a Llama model (HF safetensors or GGUF source, with any in-memory compressed weights):
// llama.cpp names and metadata, q/k rows permuted into llama.cpp's RoPE order, the tokenizer converted,
// each 2-D tensor quantized byte-exactly as llama-quantize would (or stored in the closest type that fits
// its rows), written to a temporary file, re-read and checked tensor by tensor, and only then named.
// The data section is one stream of blocks of rows (block-pipeline.ts): the next blocks are read,
// quantized on the workers and hashed on the CRC threads while the current one is written, around the
// page cache where the OS allows it (io/direct-writer.ts); this thread only joins the blocks' CRCs.

import { stat } from 'node:fs/promises'
import path from 'node:path'
import { WhittleError } from '../../errors'
import { throwIfCancelled } from '../../jobs/cancel'
import { alreadyExistsError } from '../../io/destination-lock'
import { writeGguf, type GgufKv, type GgufTensorInput } from '../../formats/gguf-writer'
import type { LoadedModel } from '../../model/loaded-model'
import type { WorkerPool } from '../../pool/worker-pool'
import { compatibleGgufType, ggufRowBytes } from '../../compress/gguf-types/quantize-tensor'
import { ggufLlamaName } from './names'
import { LLAMA_FILE_TYPE, planGgufTypes, type GgufExportType, type PolicyTensor } from './type-policy'
import type { GgufTensorPlan, GgufTypeFlags } from '../../../contract/gguf-export-types'
import { checkLlamaSource, llamaMetadata } from './llama-source'
import { tokenizerKvsFromGguf, tokenizerKvsFromHf } from './tokenizer-kv'
import { verifyGgufExport, type IntendedTensor } from './verify-gguf'
import { requantizeError, requantizeLossNote } from './requantize-loss'
import { hashBytes } from './tensor-hashes'
import { crc32Combine } from '../../numerics/crc32-combine'
import { BlockPipeline } from './block-pipeline'
import { CrcThreads } from './crc-threads'
import { tensorWork, type GgufExportTensor, type PlannedTensor, type TensorWork } from './encode-tensor'
import type { ImatrixSource } from '../../formats/imatrix-data'
import type { GgufKeptTensor } from '../../compress/gguf-types/kept-bytes'

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

export type { GgufExportTensor } from './encode-tensor'

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

/** Blocks encoded ahead of the one being written: enough to keep the workers busy across a write. */
const PIPELINE_DEPTH = 2

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

  // Types (and so sizes and offsets) are known before any tensor is encoded. Every tensor's blocks then
  // go through one pipeline, a few blocks ahead of the writer, so memory holds a few blocks, not the model.
  const tensors: GgufTensorInput[] = []
  const intended: IntendedTensor[] = []
  const report: GgufExportTensor[] = []
  const works: TensorWork[] = []
  // Blocks are hashed off this thread as they are produced, and the file again as it is re-read.
  const crcThreads = new CrcThreads(pool)
  const jobTensor: number[] = []
  const hashes: number[] = []
  for (const [i, p] of planned.entries()) {
    // The plan's type already fits the row (the policy applied llama.cpp's fallbacks).
    const plan = plans[i]
    const wanted = plan.type
    const type = wanted === 'BF16' ? 'BF16' : compatibleGgufType(wanted, p.cols).type
    const dims = [...p.entry.shape].reverse()
    const byteLength = type === 'BF16' ? p.rows * p.cols * 2 : p.rows * ggufRowBytes(type, p.cols)
    const from = requant.from.get(p.ggufName)
    const work = tensorWork(
      pool,
      crcThreads,
      p,
      wanted,
      options.imatrix ?? null,
      keptBytes,
      byteLength,
      from !== undefined,
    )
    works.push(work)
    for (const _ of work.jobs) jobTensor.push(i)
    hashes.push(hashBytes(new Uint8Array(0)))
    tensors.push({
      name: p.ggufName,
      type,
      dims,
      data: {
        byteLength,
        async produce() {
          throwIfCancelled(options.signal, file)
          progress(i / (planned.length + 1), `encoding ${p.ggufName}`)
          return (async function* () {
            for (let k = 0; k < work.jobs.length; k++) yield await pipeline.next()
            const encoded = work.finish()
            const { data, checksum } = encoded
            const tensor: GgufExportTensor = {
              ...encoded.tensor,
              check: checksum === null ? 'crc32' : 'crc32+decode',
              rule: plan.rule,
              ...(plan.pattern !== undefined ? { pattern: plan.pattern } : {}),
              ...(plan.fallback ? { fallback: plan.fallback.reason } : {}),
              ...(from && data
                ? { requantizedFrom: from, requantizeError: await requantizeError(pool, p, data, type) }
                : {}),
            }
            if (tensor.type !== type)
              throw new WhittleError('format', file, `${p.ggufName}: encoded as ${tensor.type}, planned as ${type}`)
            intended.push({ name: p.ggufName, type: tensor.type, dims, hash: hashes[i], checksum })
            report.push(tensor)
          })()
        },
      },
    })
  }
  const jobs = works.flatMap((w) => w.jobs)
  const pipeline = new BlockPipeline(jobs, {
    depth: PIPELINE_DEPTH,
    // Each block's CRC-32 comes with it (hashed off this thread); joined in order into its tensor's.
    onBlock: (block, index) => {
      hashes[jobTensor[index]] = crc32Combine(hashes[jobTensor[index]], block.crc, block.bytes.byteLength)
    },
  })
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
  let bytes: number
  try {
    bytes = await writeGguf(
      file,
      { kv, tensors },
      {
        exclusive: true,
        // Gigabytes written once: around the page cache where the OS allows it (io/direct-writer.ts).
        direct: true,
        verify: async (temp) => {
          progress(planned.length / (planned.length + 1), 'verifying')
          await verifyGgufExport(temp, intended, pool, file, crcThreads)
        },
      },
    )
  } finally {
    // On a failure blocks may still be encoding: wait until none uses kernel memory any more.
    await pipeline.close()
    await crcThreads.close()
  }
  progress(1, 'written and verified')
  const loss = requantizeLossNote(report.flatMap((t) => (t.requantizeError === undefined ? [] : [t.requantizeError])))
  return { file, tensors: report, skipped, bytes, warnings: requant.warnings.map((w) => w + loss) }
}
