// The GGUF importance matrix, llama-imatrix's default output since 2025: a GGUF with general.type
// "imatrix", the keys imatrix.datasets (string array), imatrix.chunk_count and imatrix.chunk_size (u32),
// and per weight NAME two F32 tensors: NAME.in_sum2 (Σx² per input column, [columns] or [columns,
// experts] in ggml order) and NAME.counts (tokens summed, one per expert). Newer llama.cpp also writes
// NAME.in_sum (Σx), which quantization does not use; it is read past. Tensors are written sorted by name,
// in_sum2 before counts, as llama.cpp does.
// Read with the hardened GGUF reader (its limits apply), then checked as an imatrix: every sums tensor
// has its counts, shapes agree, every value is finite and not negative. Errors name the file.

import { WhittleError } from '../errors'
import { readGguf } from './gguf'
import { writeGguf, type GgufKv, type GgufTensorInput } from './gguf-writer'
import { readTensorF32 } from './read'
import type { TensorEntry } from './types'
import { checkImatrix, sortedEntryNames, type Imatrix, type ImatrixEntry } from './imatrix-data'

export const IMATRIX_KEYS = {
  type: 'general.type',
  datasets: 'imatrix.datasets',
  chunkCount: 'imatrix.chunk_count',
  chunkSize: 'imatrix.chunk_size',
} as const
export const IMATRIX_GENERAL_TYPE = 'imatrix'
const SUMS = '.in_sum2'
const COUNTS = '.counts'
const LINEAR_SUMS = '.in_sum'

function u32Key(metadata: Record<string, unknown>, key: string, file: string): number {
  const v = metadata[key]
  if (v === undefined)
    throw new WhittleError('format', file, `has no ${key}; llama-quantize refuses an imatrix GGUF without it`)
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0)
    throw new WhittleError('format', file, `${key} is not a count`)
  return v
}

function datasetsOf(metadata: Record<string, unknown>, file: string): string[] {
  const v = metadata[IMATRIX_KEYS.datasets]
  if (v === undefined)
    throw new WhittleError(
      'format',
      file,
      `has no ${IMATRIX_KEYS.datasets}; llama-quantize refuses an imatrix GGUF without it`,
    )
  if (!Array.isArray(v) || !v.every((s) => typeof s === 'string'))
    throw new WhittleError('format', file, `${IMATRIX_KEYS.datasets} is not a list of strings`)
  return v as string[]
}

/** [matrices, columns] of an in_sum2 tensor (PyTorch order: a 1-D tensor is one matrix). */
function sumsShape(t: TensorEntry, file: string): [number, number] {
  if (t.shape.length === 1) return [1, t.shape[0]]
  if (t.shape.length === 2) return [t.shape[0], t.shape[1]]
  throw new WhittleError('format', file, `${t.name} has ${t.shape.length} dimensions; an imatrix sum has 1 or 2`)
}

function checkValues(values: Float32Array, what: string, file: string): void {
  const bad = values.findIndex((v) => !Number.isFinite(v) || v < 0)
  if (bad >= 0)
    throw new WhittleError('format', file, `${what}[${bad}] is ${values[bad]}; it must be finite and not negative`)
}

/** Reads a GGUF imatrix (llama-imatrix's or Whittle's). */
export async function readImatrixGguf(file: string): Promise<Imatrix> {
  const g = await readGguf(file)
  const kind = g.metadata[IMATRIX_KEYS.type]
  if (kind !== undefined && kind !== IMATRIX_GENERAL_TYPE) {
    throw new WhittleError(
      'format',
      file,
      `is a GGUF of general.type ${JSON.stringify(kind)}, not an importance matrix`,
    )
  }
  const byName = new Map(g.tensors.map((t) => [t.name, t]))
  const entries = new Map<string, ImatrixEntry>()
  for (const t of g.tensors) {
    if (t.name.endsWith(COUNTS) && !byName.has(t.name.slice(0, -COUNTS.length) + SUMS)) {
      throw new WhittleError('format', file, `${t.name} has no matching ${SUMS} tensor`)
    }
    if (!t.name.endsWith(SUMS)) continue
    const name = t.name.slice(0, -SUMS.length)
    const countsTensor = byName.get(name + COUNTS)
    if (!countsTensor) throw new WhittleError('format', file, `${t.name} has no matching ${COUNTS} tensor`)
    for (const x of [t, countsTensor])
      if (x.dtype !== 'F32') throw new WhittleError('format', file, `${x.name} is ${x.dtype}; an imatrix stores F32`)
    const [matrices, columns] = sumsShape(t, file)
    const countElements = countsTensor.shape.reduce((a, b) => a * b, 1)
    if (countElements !== matrices)
      throw new WhittleError(
        'format',
        file,
        `${countsTensor.name} holds ${countElements} counts for ${matrices} matrices`,
      )
    const linear = byName.get(name + LINEAR_SUMS)
    if (linear && linear.shape.reduce((a, b) => a * b, 1) !== matrices * columns) {
      throw new WhittleError('format', file, `${linear.name} and ${t.name} differ in size`)
    }
    const sums = await readTensorF32(t)
    checkValues(sums, t.name, file)
    const counts = Float64Array.from(await readTensorF32(countsTensor))
    checkValues(Float32Array.from(counts), countsTensor.name, file)
    entries.set(name, { columns, sums, counts })
  }
  if (entries.size === 0)
    throw new WhittleError('format', file, `holds no ${SUMS} tensors; it is not an importance matrix`)
  return {
    entries,
    countUnit: 'tokens',
    chunkCount: u32Key(g.metadata, IMATRIX_KEYS.chunkCount, file),
    chunkSize: u32Key(g.metadata, IMATRIX_KEYS.chunkSize, file),
    datasets: datasetsOf(g.metadata, file),
  }
}

function f32Bytes(values: ArrayLike<number>): Uint8Array {
  const f = Float32Array.from(values)
  return new Uint8Array(f.buffer)
}

/**
 * Writes `imatrix` as llama-imatrix does (same keys in the same order, tensors sorted by name, sums then
 * counts, 1-D where there is one matrix). The file must not exist. Returns its size.
 */
export async function writeImatrixGguf(file: string, imatrix: Imatrix): Promise<number> {
  checkImatrix(imatrix, file)
  if (imatrix.countUnit !== 'tokens' || imatrix.chunkSize === null) {
    throw new WhittleError(
      'unsupported',
      file,
      'a legacy .dat imatrix counts calls, not tokens, and cannot be written as GGUF without its chunk size',
    )
  }
  const kv: GgufKv[] = [
    { key: IMATRIX_KEYS.type, type: 'string', value: IMATRIX_GENERAL_TYPE },
    { key: IMATRIX_KEYS.datasets, type: 'array', itemType: 'string', value: imatrix.datasets },
    { key: IMATRIX_KEYS.chunkCount, type: 'u32', value: imatrix.chunkCount },
    { key: IMATRIX_KEYS.chunkSize, type: 'u32', value: imatrix.chunkSize },
  ]
  const tensors: GgufTensorInput[] = []
  for (const name of sortedEntryNames(imatrix)) {
    const e = imatrix.entries.get(name)!
    const matrices = e.counts.length
    tensors.push({
      name: name + SUMS,
      type: 'F32',
      dims: matrices === 1 ? [e.columns] : [e.columns, matrices],
      data: f32Bytes(e.sums),
    })
    tensors.push({
      name: name + COUNTS,
      type: 'F32',
      dims: matrices === 1 ? [1] : [1, matrices],
      data: f32Bytes(e.counts),
    })
  }
  return writeGguf(file, { kv, tensors }, { exclusive: true })
}
