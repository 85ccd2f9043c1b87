// compressed-tensors sparse exports, as llm-compressor writes pruned models: "sparse-bitmask" (any
// unstructured sparsity) and "sparse-24-bitmask" (2:4). Each sparse block Linear `<m>.weight` becomes
// `<m>.shape`, `<m>.compressed`, `<m>.bitmask` (+ `<m>.row_offsets` for sparse-bitmask), the layouts of
// numerics/sparse-bitmask.ts; every other tensor is written as the model holds it. config.json gets
// quantization_config = { quant_method: "compressed-tensors", sparsity_config: { format, targets,
// ignore, global_sparsity, sparsity_structure } } (compressed-tensors config/base.py and
// ModelCompressor.update_config). Values keep the weight's dtype, so the export decodes bit-exactly.

import path from 'node:path'
import { WhittleError } from '../errors'
import { openModelFiles } from '../formats/open'
import { decodeToF32, readTensorBytes, readTensorF32 } from '../formats/read'
import { writeSafetensors, type SafetensorsTensorInput } from '../formats/safetensors-writer'
import type { DType, TensorEntry } from '../formats/types'
import { closeFile } from '../io/ranged-file'
import type { ModelView } from '../model/model-view'
import { isBlockLinear } from '../compress/recipe/targets'
import { bitmaskRowBytes, compressBitmask, compressTwoFour, isTwoFourSparse } from '../numerics/sparse-bitmask'
import { f32ToBf16Bits, f32ToF16Bits } from '../numerics/float-encodings'
import { modelFloatDType } from './compressed-tensors-export'
import { copySidecars, moduleOf, sameBits, tensorChunks, writeJson } from './gptq-export'

export type SparseExportFormat = 'sparse-bitmask' | 'sparse-24-bitmask'

export const SPARSE_EXPORT_FORMATS: readonly SparseExportFormat[] = ['sparse-bitmask', 'sparse-24-bitmask']

export function isSparseExportFormat(format: string): format is SparseExportFormat {
  return (SPARSE_EXPORT_FORMATS as readonly string[]).includes(format)
}

/** The sparsity_structure each format declares (compressed-tensors SparsityStructure values). */
const SPARSITY_STRUCTURE: Record<SparseExportFormat, string> = {
  'sparse-bitmask': 'unstructured',
  'sparse-24-bitmask': '2:4',
}

const FLOAT_SIZES: ReadonlyMap<DType, number> = new Map<DType, number>([
  ['F32', 4],
  ['F16', 2],
  ['BF16', 2],
])

interface WeightBytes {
  raw: Uint8Array
  dtype: DType
  elementSize: number
  rows: number
  cols: number
}

/** f32 values as F16/BF16 bits when every one survives the conversion exactly, else null. */
function narrowed(f32: Float32Array, dtype: 'F16' | 'BF16'): Uint8Array | null {
  const encode = dtype === 'F16' ? f32ToF16Bits : f32ToBf16Bits
  const bits = Uint16Array.from(f32, (v) => encode(v))
  const bytes = new Uint8Array(bits.buffer)
  const back = new Float32Array(f32.length)
  decodeToF32(dtype, bytes, f32.length, back)
  return sameBits(back, f32) < 0 ? bytes : null
}

/**
 * A block Linear's weight as stored bytes. Weights held as F32 (a compression's results, a packed
 * checkpoint's decoded Linears) go in the model's declared dtype when that is exact, so a pruned bf16
 * model stays bf16 on disk, and in F32 otherwise.
 */
async function weightBytes(e: TensorEntry, modelDType: DType): Promise<WeightBytes | null> {
  const [rows, cols] = e.shape
  if (e.unpack || e.dtype === 'F32') {
    const f32 = await readTensorF32(e)
    const narrow = modelDType === 'F16' || modelDType === 'BF16' ? narrowed(f32, modelDType) : null
    if (narrow) return { raw: narrow, dtype: modelDType, elementSize: 2, rows, cols }
    return { raw: new Uint8Array(f32.buffer), dtype: 'F32', elementSize: 4, rows, cols }
  }
  const elementSize = FLOAT_SIZES.get(e.dtype)
  if (elementSize === undefined) return null
  return { raw: await readTensorBytes(e, 0, e.byteLength), dtype: e.dtype, elementSize, rows, cols }
}

function zeroCount(w: WeightBytes): number {
  let zeros = 0
  for (let i = 0; i < w.rows * w.cols; i++) {
    let stored = false
    for (let b = i * w.elementSize; b < (i + 1) * w.elementSize && !stored; b++) stored = w.raw[b] !== 0
    if (!stored) zeros++
  }
  return zeros
}

/** Bytes a sparse-bitmask weight takes: the nonzeros, the bitmask and the int64 row offsets. */
function bitmaskBytes(w: WeightBytes, zeros: number): number {
  return (w.rows * w.cols - zeros) * w.elementSize + w.rows * bitmaskRowBytes(w.cols) + w.rows * 8
}

export interface SparsePlan {
  format: SparseExportFormat
  /** Weight names stored sparse. */
  targets: Set<string>
  /** Zeros over all block Linear weights. */
  globalSparsity: number
  /** Linear modules left dense: lm_head and the block Linears not stored sparse. */
  ignore: string[]
}

/**
 * Which block Linears the format stores sparse: for sparse-bitmask those it makes smaller, for
 * sparse-24-bitmask those that are 2:4. The others stay dense and are listed in `ignore`.
 */
export async function planSparseExport(view: ModelView, format: SparseExportFormat): Promise<SparsePlan> {
  const targets = new Set<string>()
  const ignore = ['lm_head']
  let zeros = 0
  let total = 0
  for (const t of view.tensors.filter(isBlockLinear)) {
    const w = await weightBytes(view.entry(t.name), modelFloatDType(view))
    const z = w ? zeroCount(w) : 0
    zeros += z
    total += t.shape[0] * t.shape[1]
    const sparse =
      w !== null &&
      (format === 'sparse-bitmask'
        ? bitmaskBytes(w, z) < w.raw.length
        : isTwoFourSparse(w.raw, w.rows, w.cols, w.elementSize))
    if (sparse) targets.add(t.name)
    else ignore.push(moduleOf(t.name))
  }
  if (targets.size === 0)
    throw new WhittleError(
      'unsupported',
      view.files.path,
      format === 'sparse-bitmask'
        ? 'no Linear is sparse enough for sparse-bitmask to store it smaller; prune the model first'
        : 'no Linear is 2:4 sparse; prune with pattern 2:4 first (or export sparse-bitmask)',
    )
  return { format, targets, globalSparsity: total > 0 ? zeros / total : 0, ignore }
}

export function sparsityConfig(plan: SparsePlan): Record<string, unknown> {
  return {
    quant_method: 'compressed-tensors',
    sparsity_config: {
      format: plan.format,
      targets: ['Linear'],
      ignore: plan.ignore,
      global_sparsity: plan.globalSparsity,
      sparsity_structure: SPARSITY_STRUCTURE[plan.format],
    },
  }
}

function i64Bytes(values: readonly number[]): Uint8Array {
  return new Uint8Array(BigInt64Array.from(values, (v) => BigInt(v)).buffer)
}

/** The tensors of one sparse weight, in compressed-tensors' order (shape, compressed, bitmask, row_offsets). */
function sparseTensors(m: string, w: WeightBytes, format: SparseExportFormat): SafetensorsTensorInput[] {
  const bitmaskShape = [w.rows, bitmaskRowBytes(w.cols)]
  if (format === 'sparse-24-bitmask') {
    const p = compressTwoFour(w.raw, w.rows, w.cols, w.elementSize)
    return [
      // sparse-24-bitmask stores the shape as a column, [[rows], [cols]].
      { name: `${m}.shape`, dtype: 'I64', shape: [2, 1], data: i64Bytes([w.rows, w.cols]) },
      { name: `${m}.compressed`, dtype: w.dtype, shape: [w.rows, w.cols / 2], data: p.compressed },
      { name: `${m}.bitmask`, dtype: 'U8', shape: bitmaskShape, data: p.bitmask },
    ]
  }
  const p = compressBitmask(w.raw, w.rows, w.cols, w.elementSize)
  return [
    { name: `${m}.shape`, dtype: 'I64', shape: [2], data: i64Bytes([w.rows, w.cols]) },
    { name: `${m}.compressed`, dtype: w.dtype, shape: [p.compressed.length / w.elementSize], data: p.compressed },
    { name: `${m}.bitmask`, dtype: 'U8', shape: bitmaskShape, data: p.bitmask },
    { name: `${m}.row_offsets`, dtype: 'I64', shape: [w.rows], data: i64Bytes(p.rowOffsets) },
  ]
}

/** Writes model.safetensors, config.json and the sidecars into dir. */
export async function writeCompressedTensorsSparse(view: ModelView, plan: SparsePlan, dir: string): Promise<string[]> {
  if (view.files.format !== 'safetensors')
    throw new WhittleError('unsupported', view.files.path, `${plan.format} export needs a safetensors source`)
  const tensors: SafetensorsTensorInput[] = []
  for (const t of view.files.tensors) {
    const e = view.entry(t.name)
    const w = plan.targets.has(t.name) ? await weightBytes(e, modelFloatDType(view)) : null
    if (w) tensors.push(...sparseTensors(moduleOf(t.name), w, plan.format))
    else tensors.push({ name: e.name, dtype: e.dtype, shape: e.shape, data: tensorChunks(e) })
  }
  await writeSafetensors(path.join(dir, 'model.safetensors'), tensors, { format: 'pt', producer: 'whittle' })
  await writeJson(path.join(dir, 'config.json'), {
    ...(view.files.config ?? {}),
    quantization_config: sparsityConfig(plan),
  })
  return ['model.safetensors', 'config.json', ...(await copySidecars(view, dir))]
}

/**
 * Re-opens the folder through Whittle's reader (formats/packed-linears.ts decodes the sparse weights)
 * and checks every tensor equals the model's, bit for bit, and that each target was stored sparse.
 */
export async function verifyCompressedTensorsSparse(view: ModelView, plan: SparsePlan, dir: string): Promise<void> {
  const reopened = await openModelFiles(dir)
  try {
    const byName = new Map(reopened.tensors.map((t) => [t.name, t]))
    for (const t of view.files.tensors) {
      const got = byName.get(t.name)
      if (!got) throw new WhittleError('format', dir, `verification failed: ${t.name} is missing`)
      if (plan.targets.has(t.name) !== (got.unpack !== undefined))
        throw new WhittleError('format', dir, `verification failed: ${t.name} is not stored as planned`)
      const want = await readTensorF32(view.entry(t.name))
      const back = await readTensorF32(got)
      const at = sameBits(back, want)
      if (at >= 0)
        throw new WhittleError(
          'format',
          dir,
          `verification failed: ${t.name} reads ${back[at]} at element ${at}, the model has ${want[at]}`,
        )
    }
  } finally {
    for (const f of reopened.files) closeFile(f)
  }
}

/** An upper bound of the export's bytes for the free-space check: dense size plus bitmasks and offsets. */
export function estimateSparseBytes(view: ModelView): number {
  const linears = new Set(view.tensors.filter(isBlockLinear).map((t) => t.name))
  let bytes = 0
  for (const t of view.files.tensors) {
    const e = view.entry(t.name)
    bytes += e.byteLength
    if (linears.has(t.name)) bytes += e.shape[0] * (bitmaskRowBytes(e.shape[1]) + 8) + 32
  }
  return bytes
}
