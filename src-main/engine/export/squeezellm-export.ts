// SqueezeLLM's packed checkpoint, as the authors' QuantLinearLUT (SqueezeAILab/SqueezeLLM,
// squeezellm/quant.py) and vLLM's squeezellm loader read it:
// - per quantized Linear <module>: `<module>.qweight` I32 [in·bits/32, out], each output row's codes as
//   one LSB-first bit stream along the input dimension cut into int32 words (at 4 bits 8 codes a word;
//   at 3 bits 32 codes in 3 words, codes 10 and 21 straddling words): the GPTQ layout of
//   numerics/gptq-pack.ts; `<module>.lookup_table` F16 [out, 2^bits], each row's centroids (the record
//   holds them per row already: tables Whittle shares between rows, scaled per row, or stores in int8
//   are written out per row in fp16, as the loader reads one table per row);
// - the dense-and-sparse part, when some weight is not on its row's table: CSR `<module>.rows` I32
//   [out + 1], `<module>.cols` I32 [nnz], `<module>.vals` F32 [nnz], and `sparse_threshold.<module>`
//   I32 (a scalar: nnz, from which the loader sizes those buffers). The dense code of a sparse weight is
//   its row's centroid nearest to 0 and vals holds w − that centroid: the loader adds the two;
// - every other tensor F16; config.json with `torch_dtype: float16`, and quant_config.json
//   {"wbits": bits}, the file both loaders read.
// The authors' own script loads a torch.save'd state dict (.pt): the names, shapes and dtypes here are
// that state dict's, in safetensors (`torch.save(safetensors.torch.load_file(f), "model.pt")` gives it).
// Their loader replaces every Linear but lm_head and sizes qweight as (in // 32)·bits, and their kernels
// take 3 and 4 bits: so every block Linear must be SqueezeLLM-quantized at one width of 3 or 4 bits,
// with in a multiple of 32; anything else is refused before writing, naming the tensor.
// Storage on disk is larger than the report's bits per weight, which counts the sparse part as COO
// (fp16 value + 32-bit index) and shared tables once: here each sparse weight takes an f32 value and an
// int32 column, plus the row pointers, and every row its own fp16 table (squeezeLlmFileBitsPerWeight;
// verifySqueezeLlm measures it from the file).

import path from 'node:path'
import type { TensorInfo } from '../../contract/api'
import { INPUT_GROUP } from '../calibration/capture'
import type { LinearRole } from '../forward/causal-lm'
import { nearestCentroid } from '../compress/quant/kmeans'
import type { UniformGridRecord } from '../compress/quant/record'
import { WhittleError } from '../errors'
import { openModelFiles } from '../formats/open'
import { readTensorBytes, readTensorF32 } from '../formats/read'
import { writeSafetensors, type SafetensorsTensorInput } from '../formats/safetensors-writer'
import type { DType, TensorEntry } from '../formats/types'
import { closeFile } from '../io/ranged-file'
import type { ModelView } from '../model/model-view'
import { packedWords } from '../numerics/bit-fields'
import { encodeF16Array, f16ToF32 } from '../numerics/float-encodings'
import { packGptqWeight, unpackGptqWeight } from '../numerics/gptq-pack'
import { bytesOf, copySidecars, f16Chunks, moduleOf, readInt32, sameBits, tensorChunks, writeJson } from './gptq-export'

/** The code widths the authors' kernels (and so their loader) take. */
export const SQUEEZELLM_EXPORT_BITS: readonly number[] = [3, 4]

const FLOAT_DTYPES: ReadonlySet<DType> = new Set(['F64', 'F32', 'F16', 'BF16'])

/** One Linear as the checkpoint stores it. */
export interface PackedLut {
  qweight: Int32Array
  /** fp16 bits, [out, 2^bits] */
  lookupTable: Uint16Array
  /** CSR of the sparse part: row pointers [out + 1], columns and f32 values [nnz]. */
  rowPtr: Int32Array
  colIdx: Int32Array
  vals: Float32Array
}

/** The block Linears of the view (what the authors' loader replaces), in file order. */
function blockLinears(view: ModelView): TensorInfo[] {
  return view.tensors.filter((t) => t.layer !== undefined && t.layer !== null && INPUT_GROUP[t.role as LinearRole])
}

/** The one code width of the checkpoint; refuses what the authors' loader cannot take. */
export function squeezeLlmExportBits(
  view: ModelView,
  records: ReadonlyMap<string, UniformGridRecord>,
  where: string,
): number {
  const linears = blockLinears(view)
  if (linears.length === 0) throw new WhittleError('validation', where, 'the model has no block Linear to pack')
  let bits: number | null = null
  for (const t of linears) {
    const r = records.get(t.name)
    if (!r || r.encoding !== 'lut' || !r.lut)
      throw new WhittleError(
        'unsupported',
        where,
        `${t.name} is not SqueezeLLM-quantized; the SqueezeLLM loader replaces every block Linear, so all must be (use safetensors for a partly quantized model)`,
      )
    if (!SQUEEZELLM_EXPORT_BITS.includes(r.bits))
      throw new WhittleError(
        'unsupported',
        where,
        `${t.name} has ${r.bits}-bit codes; SqueezeLLM's kernels take 3 or 4 bits`,
      )
    if (bits !== null && r.bits !== bits)
      throw new WhittleError(
        'unsupported',
        where,
        `${t.name} has ${r.bits}-bit codes, others ${bits}; one checkpoint holds one width`,
      )
    bits = r.bits
    if (r.cols % 32 !== 0)
      throw new WhittleError(
        'unsupported',
        where,
        `${t.name} has ${r.cols} inputs; SqueezeLLM's loader packs whole runs of 32 inputs, so its checkpoints need a multiple of 32`,
      )
    const shape = view.entry(t.name).shape
    if (shape[0] !== r.rows || shape[1] !== r.cols)
      throw new WhittleError(
        'validation',
        where,
        `${t.name}: the record is ${r.rows}×${r.cols}, the tensor ${JSON.stringify(shape)}`,
      )
  }
  return bits!
}

/**
 * The codes and the sparse part of a fake-quantized weight W under its row tables: a weight on its
 * row's table takes that entry's code; any other is sparse (code of the centroid nearest to 0, value
 * w − that centroid in f32, which must add back to w exactly).
 */
export function packLutLinear(r: UniformGridRecord, W: Float32Array, where: string): PackedLut {
  const { rows, cols, bits } = r
  const k = 2 ** bits
  const lut = r.lut!
  if (W.length !== rows * cols)
    throw new WhittleError('validation', null, `${where}: ${W.length} weights for a ${rows}×${cols} record`)
  const codes = new Uint8Array(rows * cols)
  const rowPtr = new Int32Array(rows + 1)
  const colIdx: number[] = [],
    vals: number[] = []
  for (let row = 0; row < rows; row++) {
    const table = lut.subarray(row * k, (row + 1) * k)
    const zero = nearestCentroid(table, 0)
    for (let c = 0; c < cols; c++) {
      const w = W[row * cols + c]
      const q = nearestCentroid(table, w)
      if (Object.is(table[q], w)) {
        codes[row * cols + c] = q
        continue
      }
      const v = Math.fround(w - table[zero])
      if (!Object.is(Math.fround(table[zero] + v), w))
        throw new WhittleError(
          'validation',
          null,
          `${where}: weight [${row}, ${c}] = ${w} is neither on its row's table nor representable as centroid + f32 sparse value; a later step changed it`,
        )
      codes[row * cols + c] = zero
      colIdx.push(c)
      vals.push(v)
    }
    rowPtr[row + 1] = colIdx.length
  }
  return {
    qweight: packGptqWeight(codes, rows, cols, bits),
    lookupTable: encodeF16Array(lut),
    rowPtr,
    colIdx: Int32Array.from(colIdx),
    vals: Float32Array.from(vals),
  }
}

/** The weights a packed Linear decodes to: table entry by code, plus the sparse value where there is one. */
export function unpackLutLinear(p: PackedLut, rows: number, cols: number, bits: number): Float32Array {
  const k = 2 ** bits
  const codes = unpackGptqWeight(p.qweight, rows, cols, bits)
  const W = new Float32Array(rows * cols)
  for (let row = 0; row < rows; row++)
    for (let c = 0; c < cols; c++) W[row * cols + c] = f16ToF32(p.lookupTable[row * k + codes[row * cols + c]])
  for (let row = 0; row < rows; row++)
    for (let j = p.rowPtr[row]; j < p.rowPtr[row + 1]; j++) {
      const at = row * cols + p.colIdx[j]
      W[at] = Math.fround(W[at] + p.vals[j])
    }
  return W
}

/** Writes model.safetensors, config.json, quant_config.json and the sidecars into dir. */
export async function writeSqueezeLlm(
  view: ModelView,
  records: ReadonlyMap<string, UniformGridRecord>,
  dir: string,
): Promise<string[]> {
  if (view.files.format !== 'safetensors')
    throw new WhittleError('unsupported', view.files.path, 'the SqueezeLLM export needs a safetensors source')
  const bits = squeezeLlmExportBits(view, records, dir)
  // Packed up front (the sparse part's sizes go into the header); one Linear's codes at a time.
  const packed = new Map<string, PackedLut>()
  for (const t of blockLinears(view))
    packed.set(t.name, packLutLinear(records.get(t.name)!, await readTensorF32(view.entry(t.name)), t.name))
  const sparse = [...packed.values()].some((p) => p.colIdx.length > 0)
  const tensors: SafetensorsTensorInput[] = []
  for (const t of view.files.tensors) {
    const p = packed.get(t.name)
    if (p) {
      const r = records.get(t.name)!
      const module = moduleOf(t.name)
      tensors.push(
        {
          name: `${module}.qweight`,
          dtype: 'I32',
          shape: [packedWords(r.cols, bits), r.rows],
          data: bytesOf(p.qweight),
        },
        { name: `${module}.lookup_table`, dtype: 'F16', shape: [r.rows, 2 ** bits], data: bytesOf(p.lookupTable) },
      )
      if (sparse)
        tensors.push(
          { name: `${module}.rows`, dtype: 'I32', shape: [r.rows + 1], data: bytesOf(p.rowPtr) },
          { name: `${module}.cols`, dtype: 'I32', shape: [p.colIdx.length], data: bytesOf(p.colIdx) },
          { name: `${module}.vals`, dtype: 'F32', shape: [p.vals.length], data: new Uint8Array(p.vals.buffer) },
          {
            name: `sparse_threshold.${module}`,
            dtype: 'I32',
            shape: [],
            data: bytesOf(Int32Array.of(p.colIdx.length)),
          },
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
  await writeJson(path.join(dir, 'config.json'), { ...(view.files.config ?? {}), torch_dtype: 'float16' })
  await writeJson(path.join(dir, 'quant_config.json'), { wbits: bits })
  return ['model.safetensors', 'config.json', 'quant_config.json', ...(await copySidecars(view, dir))]
}

/**
 * Re-opens the export, decodes every packed Linear and checks it equals the view's weights bit for bit.
 * Returns the bits per weight the packed Linears take in the file (all their tensors' bytes).
 */
export async function verifySqueezeLlm(
  view: ModelView,
  records: ReadonlyMap<string, UniformGridRecord>,
  dir: string,
): Promise<number> {
  const file = path.join(dir, 'model.safetensors')
  const reopened = await openModelFiles(file)
  try {
    const byName = new Map(reopened.tensors.map((t) => [t.name, t]))
    const need = (name: string, dtype: DType, shape?: number[]): TensorEntry => {
      const e = byName.get(name)
      if (!e) throw new WhittleError('format', file, `the export lacks ${name}`)
      if (e.dtype !== dtype || (shape && JSON.stringify(e.shape) !== JSON.stringify(shape)))
        throw new WhittleError(
          'format',
          file,
          `${name} is ${e.dtype} ${JSON.stringify(e.shape)}, expected ${dtype} ${JSON.stringify(shape)}`,
        )
      return e
    }
    const linears = new Set(blockLinears(view).map((t) => t.name))
    let fileBytes = 0,
      weights = 0
    for (const t of view.files.tensors) {
      if (!linears.has(t.name)) {
        need(t.name, FLOAT_DTYPES.has(view.entry(t.name).dtype) ? 'F16' : view.entry(t.name).dtype)
        continue
      }
      const r = records.get(t.name)!
      const module = moduleOf(t.name)
      const k = 2 ** r.bits
      const qweight = await readInt32(need(`${module}.qweight`, 'I32', [packedWords(r.cols, r.bits), r.rows]))
      const table = need(`${module}.lookup_table`, 'F16', [r.rows, k])
      const lookupTable = new Uint16Array((await readTensorBytes(table, 0, table.byteLength)).slice().buffer)
      const hasSparse = byName.has(`${module}.rows`)
      const rowPtr = hasSparse
        ? await readInt32(need(`${module}.rows`, 'I32', [r.rows + 1]))
        : new Int32Array(r.rows + 1)
      const colIdx = hasSparse ? await readInt32(need(`${module}.cols`, 'I32')) : new Int32Array(0)
      const vals = hasSparse ? await readTensorF32(need(`${module}.vals`, 'F32', [colIdx.length])) : new Float32Array(0)
      if (hasSparse) {
        const nnz = (await readInt32(need(`sparse_threshold.${module}`, 'I32', [])))[0]
        if (nnz !== colIdx.length || rowPtr[r.rows] !== nnz)
          throw new WhittleError(
            'format',
            file,
            `${module}: sparse_threshold ${nnz}, ${colIdx.length} columns, row pointers end at ${rowPtr[r.rows]}`,
          )
      }
      weights += r.rows * r.cols
      for (const name of [`${module}.qweight`, `${module}.lookup_table`]) fileBytes += byName.get(name)!.byteLength
      if (hasSparse)
        for (const name of [`${module}.rows`, `${module}.cols`, `${module}.vals`, `sparse_threshold.${module}`])
          fileBytes += byName.get(name)!.byteLength
      const decoded = unpackLutLinear({ qweight, lookupTable, rowPtr, colIdx, vals }, r.rows, r.cols, r.bits)
      const at = sameBits(decoded, await readTensorF32(view.entry(t.name)))
      if (at !== -1)
        throw new WhittleError('format', file, `${t.name}: decoded weight ${at} differs from the in-memory model`)
    }
    return (8 * fileBytes) / weights
  } finally {
    closeFile(file) // the folder is about to be renamed; drop the cached handle
  }
}
