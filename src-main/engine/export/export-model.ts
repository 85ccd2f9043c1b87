// One export, as the CLI's `compress --format` and the app's Export dialog run it: the weights in the
// chosen format, whittle-recipe.yaml and the report beside them when a compression produced the model,
// all written into a temporary folder, verified by reading back, and renamed into place.
//
// What "verified" means per format:
// - safetensors: every tensor re-read equals the in-memory model (converted to the chosen dtype);
// - gptq / compressed-tensors: every packed Linear decodes bit-exactly to the in-memory weights;
// - gguf: every tensor's bytes are what the encoder produced (by hash; decoded values too for a packing
//   whose bytes do not determine them, export/gguf/tensor-hashes.ts); tensors whose last
//   compression was the same GGUF type (or lossless types) also decode exactly to the in-memory weights,
//   the others were quantized to the export type here and are counted as such.

import { readdir, stat } from 'node:fs/promises'
import path from 'node:path'
import type { ExportFormat, ExportResult } from '../../contract/api'
import type { CompressionReport } from '../compress/compress-model'
import type { UniformGridRecord } from '../compress/quant/record'
import type { GgufKeptTensor } from '../compress/gguf-types/kept-bytes'
import { recipeToYaml } from '../compress/recipe/recipe'
import { WhittleError } from '../errors'
import { throwIfCancelled } from '../jobs/cancel'
import type { LoadedModel } from '../model/loaded-model'
import { withReplacements, type ModelView } from '../model/model-view'
import { bitsPerWeight, ggmlBlockByName, mainGgmlType } from '../numerics/ggml-blocks'
import type { WorkerPool } from '../pool/worker-pool'
import { assertFreeDestination, writeFolderAtomically } from './atomic-folder'
import { verifyCompressedTensors, writeCompressedTensors } from './compressed-tensors-export'
import { verifyCompressedTensorsW8a8, w8a8Settings, writeCompressedTensorsW8a8 } from './compressed-tensors-w8a8'
import {
  estimateSparseBytes,
  isSparseExportFormat,
  planSparseExport,
  SPARSE_EXPORT_FORMATS,
  verifyCompressedTensorsSparse,
  writeCompressedTensorsSparse,
} from './compressed-tensors-sparse'
import {
  estimateDenseBytes,
  verifyDenseSafetensors,
  writeDenseSafetensors,
  type DenseOptions,
} from './dense-safetensors'
import { exportGguf, type GgufExportReport } from './gguf/export-gguf'
import type { ImatrixSource } from '../formats/imatrix-data'
import { exportSafetensorsFromGguf } from './gguf/gguf-to-safetensors'
import { isGgufExportType, type GgufExportType } from './gguf/type-policy'
import type { GgufTypeFlags } from '../../contract/gguf-export-types'
import { verifyGptq, writeGptq } from './gptq-export'
import { verifySqueezeLlm, writeSqueezeLlm } from './squeezellm-export'
import { writeReport } from './report-html'
import { affectedHistograms } from './report-histograms'
import { writeFile } from 'node:fs/promises'
import { TERNARY_FORMAT_PREFIX } from '../compress/methods/bitnet'
import { TENSOR_HASH_NAME } from './gguf/tensor-hashes'

export const EXPORT_FORMATS: readonly ExportFormat[] = [
  'safetensors',
  'gptq',
  'compressed-tensors',
  'compressed-tensors-w8a8',
  'gguf',
  ...SPARSE_EXPORT_FORMATS,
  'squeezellm',
]

/** What a compression run left for the export: the model it started from, its report, its grids. */
export interface CompressionProvenance {
  source: LoadedModel
  report: CompressionReport
  records: ReadonlyMap<string, UniformGridRecord>
  /** The bytes of the tensors a gguf step produced last: a GGUF export of the same type writes them as they are. */
  ggufBytes?: ReadonlyMap<string, GgufKeptTensor>
}

export interface ExportModelOptions {
  format: ExportFormat
  ggufType?: string
  /** llama-quantize's type-level flags for the gguf format (--pure, --output-tensor-type, …). */
  gguf?: GgufTypeFlags
  /** Importance matrix for the gguf format (llama-quantize --imatrix). */
  imatrix?: ImatrixSource | null
  gptqFormat?: 'gptq' | 'gptq_v2'
  dtype?: 'F32' | 'F16' | 'BF16'
  shardBytes?: number
  compression?: CompressionProvenance
  signal?: AbortSignal
  onProgress?: (fraction: number, message: string) => void
}

function asView(model: LoadedModel | ModelView): ModelView {
  return 'replace' in model ? model : withReplacements(model)
}

/** The records of tensors the exported model still has under the same name. */
function liveRecords(
  view: ModelView,
  records: ReadonlyMap<string, UniformGridRecord> | undefined,
): Map<string, UniformGridRecord> {
  const names = new Set(view.tensors.map((t) => t.name))
  return new Map([...(records ?? [])].filter(([name]) => names.has(name)))
}

function sourceName(view: ModelView): string {
  const p = view.files.path
  const file = path.basename(p).replace(/\.(gguf|safetensors)$/, '')
  return file === 'model' ? path.basename(path.dirname(p)) : file
}

function checkOptions(o: ExportModelOptions): void {
  if (!EXPORT_FORMATS.includes(o.format))
    throw new WhittleError(
      'validation',
      null,
      `unknown export format "${o.format}" (known: ${EXPORT_FORMATS.join(', ')})`,
    )
  if (o.gguf !== undefined && o.format !== 'gguf')
    throw new WhittleError(
      'validation',
      null,
      'GGUF type flags (pure, output tensor type, …) apply to the gguf format only',
    )
  if (o.ggufType !== undefined && o.format !== 'gguf')
    throw new WhittleError('validation', null, 'a GGUF type applies to the gguf format only')
  if (o.ggufType !== undefined && !isGgufExportType(o.ggufType))
    throw new WhittleError('validation', null, `unknown GGUF type "${o.ggufType}"`)
  if (o.gptqFormat !== undefined && o.format !== 'gptq')
    throw new WhittleError('validation', null, 'gptq_format applies to the gptq format only')
  if ((o.dtype !== undefined || o.shardBytes !== undefined) && o.format !== 'safetensors')
    throw new WhittleError('validation', null, 'dtype and shard size apply to the safetensors format only')
  if (o.shardBytes !== undefined && (!Number.isSafeInteger(o.shardBytes) || o.shardBytes < 1 << 20))
    throw new WhittleError('validation', null, `shard size ${o.shardBytes} is not a whole number of bytes ≥ 1 MiB`)
}

async function listFiles(dir: string): Promise<{ name: string; bytes: number }[]> {
  const out: { name: string; bytes: number }[] = []
  for (const name of (await readdir(dir)).sort()) out.push({ name, bytes: (await stat(path.join(dir, name))).size })
  return out
}

/**
 * The GGUF type to export when none was asked for, from the compressed tensors' method and format: the
 * recipe's own GGUF type where every gguf tensor has the same one; TQ2_0 (exact for ternary weights) when
 * every compressed tensor is ternary (BitNet, ternary QAT); else Q8_0. The CLI's dry run asks the same.
 */
export function defaultGgufType(tensors: readonly { method: string; format: string }[]): GgufExportType {
  const formats = new Set(tensors.filter((t) => t.method === 'gguf').map((t) => t.format))
  const only = formats.size === 1 ? [...formats][0] : null
  if (only && isGgufExportType(only)) return only
  if (tensors.length > 0 && tensors.every((t) => t.format.startsWith(TERNARY_FORMAT_PREFIX))) return 'TQ2_0'
  return 'Q8_0'
}

const F32_BLOCK = ggmlBlockByName('F32')!

/**
 * Storage bits per weight of a GGUF export type, for the free-space estimate, from the block table
 * (numerics/ggml-blocks.ts): a mix (Q4_K_M, Q4_K_S, …) counts as its main type, and a name the table
 * cannot place as F32, which asks for more room rather than less.
 */
export function ggufExportBitsPerWeight(type: string): number {
  return bitsPerWeight(mainGgmlType(type) ?? F32_BLOCK)
}

/** Bytes the export's weights will take, for the free-space check before writing. */
export function estimateExportBytes(
  view: ModelView,
  o: ExportModelOptions,
  records: ReadonlyMap<string, UniformGridRecord>,
): number {
  if (o.format === 'safetensors') return estimateDenseBytes(view, { dtype: o.dtype })
  if (isSparseExportFormat(o.format)) return estimateSparseBytes(view)
  let bytes = 0
  for (const t of view.files.tensors) {
    const e = view.entry(t.name)
    const n = e.shape.reduce((a, b) => a * b, 1)
    const r = records.get(t.name)
    if (o.format === 'gguf') bytes += (n * ggufExportBitsPerWeight(o.ggufType ?? 'Q8_0')) / 8
    // SqueezeLLM: codes, tables and a sparse part whose size only packing knows; fp16 bounds it in practice.
    else if (r?.lut) bytes += n * 2
    else if (r) bytes += (n * r.bits) / 8 + r.scales.length * 6
    else bytes += o.format === 'gptq' ? n * 2 : e.byteLength
  }
  return Math.ceil(bytes)
}

export async function exportModel(
  pool: WorkerPool,
  model: LoadedModel | ModelView,
  dest: string,
  options: ExportModelOptions,
): Promise<ExportResult> {
  checkOptions(options)
  const started = performance.now()
  const view = asView(model)
  const out = path.resolve(dest)
  // A SliceGPT-sliced model's shortcut matrices and widths live in config.json (arch/sliced-llama.ts),
  // which only the safetensors folder carries; its `form: dense` reconstruction exports in any format.
  if (view.arch.slicing && options.format !== 'safetensors')
    throw new WhittleError(
      'unsupported',
      view.files.path,
      `a SliceGPT-sliced model exports as safetensors only (not ${options.format}); use slicegpt's form: dense for other formats`,
    )
  const c = options.compression
  await assertFreeDestination(out, [view.files.path, ...view.files.files, ...(c ? [c.source.files.path] : [])])
  const progress = options.onProgress ?? (() => {})
  const cancelled = (): void => throwIfCancelled(options.signal, out)
  // GGUF in, safetensors out: the lossless conversion path (llama.cpp's names and RoPE rows undone).
  if (options.format === 'safetensors' && view.files.format === 'gguf') {
    if (view.replacedNames().size > 0)
      throw new WhittleError(
        'unsupported',
        view.files.path,
        'a compressed GGUF model exports as GGUF; only an unmodified GGUF converts to safetensors',
      )
    const converted = await exportSafetensorsFromGguf(view, out)
    const dequantized = converted.tensors.filter((t) => t.dequantized).length
    return {
      out: converted.dir,
      format: 'safetensors',
      files: await listFiles(converted.dir),
      verified: `${converted.tensors.length} tensors converted and re-read (${dequantized} dequantized from block types)`,
      reportPath: null,
      seconds: (performance.now() - started) / 1000,
    }
  }
  const records = liveRecords(view, c?.records)
  const dense: DenseOptions = { dtype: options.dtype, shardBytes: options.shardBytes }
  let verified = ''
  // Which Linears are stored sparse is decided before writing, so a model with none fails here.
  const sparsePlan = isSparseExportFormat(options.format) ? await planSparseExport(view, options.format) : null
  // Likewise a W8A8 export refuses grids it cannot hold (grouped, 4-bit, mixed int/fp8) before writing.
  if (options.format === 'compressed-tensors-w8a8') w8a8Settings(records, out)
  let gguf: GgufExportReport | null = null
  const ggufType =
    options.format === 'gguf'
      ? ((options.ggufType as GgufExportType | undefined) ?? defaultGgufType(c?.report.tensors ?? []))
      : null

  const write = async (dir: string): Promise<void> => {
    cancelled()
    switch (options.format) {
      case 'safetensors':
        progress(0, 'writing safetensors')
        await writeDenseSafetensors(view, dir, dense)
        break
      case 'gptq':
        progress(0, 'packing GPTQ')
        await writeGptq(view, records, dir, { format: options.gptqFormat ?? 'gptq' })
        break
      case 'compressed-tensors':
        progress(0, 'packing compressed-tensors')
        await writeCompressedTensors(view, records, dir)
        break
      case 'compressed-tensors-w8a8':
        progress(0, 'writing compressed-tensors W8A8')
        await writeCompressedTensorsW8a8(view, records, dir)
        break
      case 'squeezellm':
        progress(0, 'packing SqueezeLLM')
        await writeSqueezeLlm(view, records, dir)
        break
      case 'sparse-bitmask':
      case 'sparse-24-bitmask':
        progress(0, `writing ${options.format}`)
        await writeCompressedTensorsSparse(view, sparsePlan!, dir)
        break
      case 'gguf': {
        gguf = await exportGguf(pool, view, path.join(dir, `${sourceName(view)}-${ggufType}.gguf`), {
          ...options.gguf,
          type: ggufType!,
          imatrix: options.imatrix ?? null,
          keptBytes: c?.ggufBytes,
          signal: options.signal,
          onProgress: (f, m) => progress(0.9 * f, m),
        })
        break
      }
    }
    cancelled()
    if (c) {
      progress(0.92, 'writing the report')
      await writeFile(path.join(dir, 'whittle-recipe.yaml'), recipeToYaml(c.report.recipe))
      const histograms = await affectedHistograms(c.source, view, c.report.tensors)
      await writeReport(dir, { ...c.report, exportFormat: ggufType ? `gguf ${ggufType}` : options.format, histograms })
    }
  }

  const verify = async (dir: string): Promise<void> => {
    progress(0.95, 'verifying')
    const tensors = view.files.tensors.length
    switch (options.format) {
      case 'safetensors':
        await verifyDenseSafetensors(view, dir, dense)
        verified = `${tensors} tensors re-read and equal to the in-memory model`
        break
      case 'gptq':
        await verifyGptq(view, records, dir, { format: options.gptqFormat ?? 'gptq' })
        verified = `${records.size} packed Linears decode bit-exactly to the in-memory weights; ${tensors - records.size} other tensors present`
        break
      case 'compressed-tensors':
        await verifyCompressedTensors(view, records, dir)
        verified = `${records.size} packed Linears decode bit-exactly to the in-memory weights; ${tensors - records.size} other tensors present`
        break
      case 'compressed-tensors-w8a8':
        await verifyCompressedTensorsW8a8(view, records, dir)
        verified = `${records.size} 8-bit Linears decode bit-exactly to the in-memory weights; ${tensors - records.size} other tensors present`
        break
      case 'squeezellm': {
        // The file's own bits per weight: per-row fp16 tables and CSR, which can exceed the report's count.
        const fileBits = await verifySqueezeLlm(view, records, dir)
        verified = `${records.size} SqueezeLLM Linears decode bit-exactly to the in-memory weights (${fileBits.toFixed(3)} bits per weight in the file); ${tensors - records.size} other tensors present`
        break
      }
      case 'sparse-bitmask':
      case 'sparse-24-bitmask': {
        await verifyCompressedTensorsSparse(view, sparsePlan!, dir)
        const sparse = sparsePlan!.targets.size
        verified = `${sparse} sparse Linears and ${tensors - sparse} other tensors re-read bit-exactly equal to the in-memory model`
        break
      }
      case 'gguf': {
        // exportGguf re-read its file already (and removes it on a mismatch).
        const r = gguf as GgufExportReport | null
        if (!r) throw new WhittleError('format', dir, 'the GGUF export produced no report')
        const exact = r.tensors.filter((t) => t.exact).length
        const decoded = r.tensors.filter((t) => t.check === 'crc32+decode').length
        const alsoDecoded = decoded === 0 ? '' : ` (${decoded} also decoded and compared)`
        const kept = r.tensors.filter((t) => t.kept).length
        const keptNote = kept === 0 ? '' : ` (${kept} written as the gguf step's own bytes)`
        verified = `${r.tensors.length} tensors re-read and compared with the bytes written by ${TENSOR_HASH_NAME}${alsoDecoded}; ${exact} decode exactly to the in-memory weights${keptNote}, ${r.tensors.length - exact} were quantized to the export type here`
        break
      }
    }
  }

  await writeFolderAtomically(out, write, verify, estimateExportBytes(view, options, records))
  progress(1, 'written and verified')
  const files = await listFiles(out)
  return {
    out,
    format: options.format,
    files,
    verified,
    reportPath: c ? path.join(out, 'whittle-report.html') : null,
    seconds: (performance.now() - started) / 1000,
  }
}
