// Checkpoints that store Linears packed (GPTQ's qweight/qzeros/scales/g_idx, compressed-tensors'
// weight_packed/weight_scale/...) open as ordinary models: each packed module becomes one F32
// `<module>.weight` entry that decodes on read, so inspection, the forward pass and perplexity see the
// weights a loader would compute. The packed parts are checked at open (dtypes, shapes, the module's
// parts all present); the bit layouts are those of numerics/gptq-pack.ts and
// numerics/compressed-tensors-pack.ts, where they are documented. compressed-tensors' sparse formats
// (sparse-bitmask, sparse-24-bitmask: numerics/sparse-bitmask.ts) open the same way.

import { WhittleError, showValue } from '../errors'
import { packedWords } from '../numerics/bit-fields'
import { dequantizeCompressedTensors } from '../numerics/compressed-tensors-pack'
import {
  dequantizeW8a8,
  W8A8_WEIGHT_DTYPE,
  type ActivationScheme,
  type W8a8Format,
} from '../numerics/compressed-tensors-w8a8'
import { dequantizeGptq, type GptqCheckpointFormat } from '../numerics/gptq-pack'
import { decompressBitmask } from '../numerics/sparse-bitmask'
import { decodeToF32, readTensorBytes, readTensorF32 } from './read'
import type { DType, ModelFiles, PackedLinearLayout, TensorEntry } from './types'

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

async function int32s(e: TensorEntry): Promise<Int32Array> {
  const b = await readTensorBytes(e, 0, e.byteLength)
  return new Int32Array(b.slice().buffer)
}

async function uint16s(e: TensorEntry): Promise<Uint16Array> {
  const b = await readTensorBytes(e, 0, e.byteLength)
  return new Uint16Array(b.slice().buffer)
}

interface Module {
  parts: Map<string, TensorEntry>
  /** Position of the first part, so the unpacked weight keeps the file's order. */
  first: number
}

/** Groups `<module>.<suffix>` tensors by module for the given suffixes. */
function modulesWith(tensors: TensorEntry[], suffixes: readonly string[]): Map<string, Module> {
  const modules = new Map<string, Module>()
  tensors.forEach((t, i) => {
    const suffix = suffixes.find((s) => t.name.endsWith(`.${s}`))
    if (!suffix) return
    const m = t.name.slice(0, -suffix.length - 1)
    if (!modules.has(m)) modules.set(m, { parts: new Map(), first: i })
    modules.get(m)!.parts.set(suffix, t)
  })
  return modules
}

function virtualWeight(
  module: string,
  at: TensorEntry,
  rows: number,
  cols: number,
  packed: PackedLinearLayout,
  unpack: () => Promise<Float32Array>,
): TensorEntry {
  return {
    name: `${module}.weight`,
    dtype: 'F32',
    shape: [rows, cols],
    file: at.file,
    offset: at.offset,
    byteLength: rows * cols * 4,
    unpack,
    packed,
  }
}

/** A module's part, present and of one of `dtypes`; the error names the file and tensor and what was found. */
function need(m: Module, module: string, part: string, dtypes: readonly DType[]): TensorEntry {
  const e = m.parts.get(part)
  if (!e) {
    const any = m.parts.values().next().value as TensorEntry
    throw new WhittleError('format', any.file, `packed module "${module}" lacks its ${part} tensor`)
  }
  if (!dtypes.includes(e.dtype))
    throw new WhittleError('format', e.file, `tensor "${e.name}" is ${e.dtype}, expected ${dtypes.join(' or ')}`)
  return e
}

/** Refuses a part whose shape is not `want` (null dims are free), naming what the shape should follow from. */
function expectShape(e: TensorEntry, want: readonly (number | null)[], why: string): void {
  if (e.shape.length === want.length && want.every((d, i) => d === null || e.shape[i] === d)) return
  const shown = want.map((d) => (d === null ? '*' : String(d))).join(', ')
  throw new WhittleError(
    'format',
    e.file,
    `tensor "${e.name}" has shape [${e.shape.join(', ')}], expected [${shown}]${why ? ` (${why})` : ''}`,
  )
}

/** Small integer tensors (weight_shape) in I32 or I64, as exact numbers. */
async function smallInts(e: TensorEntry): Promise<number[]> {
  return Array.from(await readTensorF32(e, 16))
}

function replaceModules(
  files: ModelFiles,
  modules: Map<string, Module>,
  weights: Map<string, TensorEntry>,
): ModelFiles {
  const consumed = new Set<string>()
  for (const m of modules.values()) for (const e of m.parts.values()) consumed.add(e.name)
  const tensors: TensorEntry[] = []
  const firstOf = new Map([...modules].map(([name, m]) => [m.first, name]))
  files.tensors.forEach((t, i) => {
    const module = firstOf.get(i)
    if (module !== undefined) tensors.push(weights.get(module)!)
    if (!consumed.has(t.name)) tensors.push(t)
  })
  return { ...files, tensors }
}

function gptqModules(files: ModelFiles, q: Record<string, unknown>): ModelFiles {
  const bits = q.bits
  if (typeof bits !== 'number' || ![2, 3, 4, 8].includes(bits))
    throw new WhittleError('format', files.path, `quantization_config.bits ${showValue(bits)} is not 2, 3, 4 or 8`)
  const groupSize = Number.isSafeInteger(q.group_size) ? (q.group_size as number) : -1
  const format: GptqCheckpointFormat = q.checkpoint_format === 'gptq_v2' ? 'gptq_v2' : 'gptq'
  const modules = modulesWith(files.tensors, ['qweight', 'qzeros', 'scales', 'g_idx'])
  const weights = new Map<string, TensorEntry>()
  for (const [name, m] of modules) {
    const qweight = need(m, name, 'qweight', ['I32']),
      qzeros = need(m, name, 'qzeros', ['I32']),
      scales = need(m, name, 'scales', ['F16'])
    const gIdxEntry = m.parts.has('g_idx') ? need(m, name, 'g_idx', ['I32']) : undefined
    expectShape(qweight, [null, null], 'packed input words × outputs')
    expectShape(scales, [null, null], 'groups × outputs')
    if (gIdxEntry) expectShape(gIdxEntry, [null], 'one group per input')
    const rows = qweight.shape[1]
    const cols = gIdxEntry ? gIdxEntry.shape[0] : Math.floor((qweight.shape[0] * 32) / bits)
    const groups = scales.shape[0]
    if (rows < 1 || cols < 1 || groups < 1)
      throw new WhittleError(
        'format',
        qweight.file,
        `packed module "${name}" has an empty dimension (${rows} outputs, ${cols} inputs, ${groups} groups)`,
      )
    expectShape(qweight, [packedWords(cols, bits), rows], `${cols} inputs at ${bits} bits`)
    expectShape(scales, [groups, rows], `${rows} outputs`)
    expectShape(qzeros, [groups, packedWords(rows, bits)], `${groups} groups × ${rows} outputs at ${bits} bits`)
    if (!gIdxEntry && groupSize > 0 && Math.ceil(cols / groupSize) > groups) {
      throw new WhittleError(
        'format',
        scales.file,
        `tensor "${scales.name}" holds ${groups} groups, but ${cols} inputs in groups of ${groupSize} need ${Math.ceil(cols / groupSize)}`,
      )
    }
    const layout: PackedLinearLayout = {
      scheme: 'gptq',
      gptqFormat: format,
      bits,
      groupSize,
      actOrder: q.desc_act === true,
      symmetric: q.sym !== false,
      rows,
      cols,
      codes: qweight,
      scales,
      zeros: qzeros,
      gIdx: gIdxEntry,
    }
    weights.set(
      name,
      virtualWeight(name, qweight, rows, cols, layout, async () => {
        const gIdx = gIdxEntry
          ? await int32s(gIdxEntry)
          : Int32Array.from({ length: cols }, (_, c) => (groupSize > 0 ? Math.floor(c / groupSize) : 0))
        try {
          return dequantizeGptq(
            { qweight: await int32s(qweight), qzeros: await int32s(qzeros), scales: await uint16s(scales), gIdx },
            rows,
            cols,
            bits,
            format,
          )
        } catch (e) {
          throw e instanceof WhittleError
            ? new WhittleError('format', qweight.file, `packed module "${name}": ${e.message}`)
            : e
        }
      }),
    )
  }
  return replaceModules(files, modules, weights)
}

async function compressedTensorsModules(files: ModelFiles, q: Record<string, unknown>): Promise<ModelFiles> {
  if (q.format !== 'pack-quantized')
    throw new WhittleError(
      'unsupported',
      files.path,
      `compressed-tensors format ${showValue(q.format)} is not supported (pack-quantized is)`,
    )
  const groups = isObject(q.config_groups) ? Object.values(q.config_groups) : []
  if (groups.length !== 1 || !isObject(groups[0]) || !isObject(groups[0].weights)) {
    throw new WhittleError(
      'unsupported',
      files.path,
      'compressed-tensors checkpoints with other than one config group are not supported',
    )
  }
  const w = groups[0].weights
  const bits = w.num_bits
  if (typeof bits !== 'number' || !Number.isInteger(bits) || bits < 1 || bits > 8)
    throw new WhittleError('format', files.path, `num_bits ${showValue(bits)} is not 1–8`)
  const groupSize = Number.isSafeInteger(w.group_size) ? (w.group_size as number) : -1
  const modules = modulesWith(files.tensors, [
    'weight_packed',
    'weight_scale',
    'weight_zero_point',
    'weight_shape',
    'weight_g_idx',
  ])
  const weights = new Map<string, TensorEntry>()
  for (const [name, m] of modules) {
    const packed = need(m, name, 'weight_packed', ['I32']),
      shapeEntry = need(m, name, 'weight_shape', ['I32', 'I64'])
    const scale = need(m, name, 'weight_scale', ['F32', 'F16', 'BF16'])
    const zero = m.parts.has('weight_zero_point') ? need(m, name, 'weight_zero_point', ['I32']) : undefined
    const gIdx = m.parts.has('weight_g_idx') ? need(m, name, 'weight_g_idx', ['I32']) : undefined
    expectShape(shapeEntry, [2], 'rows and columns of the weight')
    const [rows, cols] = await smallInts(shapeEntry)
    if (![rows, cols].every((d) => Number.isSafeInteger(d) && d > 0 && d <= 0x7fffffff)) {
      throw new WhittleError(
        'format',
        shapeEntry.file,
        `tensor "${shapeEntry.name}" holds [${rows}, ${cols}], not two positive sizes`,
      )
    }
    expectShape(packed, [rows, packedWords(cols, bits)], `a ${rows}×${cols} weight at ${bits} bits`)
    expectShape(scale, [rows, null], `${rows} outputs × groups`)
    const groupCount = scale.shape[1]
    if (groupCount < 1) throw new WhittleError('format', scale.file, `tensor "${scale.name}" has no groups`)
    if (zero)
      expectShape(zero, [packedWords(rows, bits), groupCount], `${rows} outputs at ${bits} bits × ${groupCount} groups`)
    if (gIdx) expectShape(gIdx, [cols], 'one group per input')
    else if (groupSize > 0 && Math.ceil(cols / groupSize) > groupCount) {
      throw new WhittleError(
        'format',
        scale.file,
        `tensor "${scale.name}" holds ${groupCount} groups, but ${cols} inputs in groups of ${groupSize} need ${Math.ceil(cols / groupSize)}`,
      )
    }
    const layout: PackedLinearLayout = {
      scheme: 'compressed-tensors',
      bits,
      groupSize,
      actOrder: typeof w.actorder === 'string' || w.actorder === true,
      symmetric: w.symmetric !== false,
      rows,
      cols,
      codes: packed,
      scales: scale,
      zeros: zero,
      gIdx,
      weightShape: shapeEntry,
    }
    weights.set(
      name,
      virtualWeight(name, packed, rows, cols, layout, async () => {
        try {
          return dequantizeCompressedTensors(
            {
              packed: await int32s(packed),
              scale: await readTensorF32(scale),
              zeroPoint: zero ? await int32s(zero) : null,
              shape: Int32Array.of(rows, cols),
              gIdx: gIdx ? await int32s(gIdx) : null,
            },
            bits,
            groupSize,
          )
        } catch (e) {
          throw e instanceof WhittleError
            ? new WhittleError('format', packed.file, `packed module "${name}": ${e.message}`)
            : e
        }
      }),
    )
  }
  return replaceModules(files, modules, weights)
}

/** A whole integer tensor (I32 or I64) as exact numbers; I64 values beyond 2^53 are refused. */
async function exactInts(e: TensorEntry): Promise<number[]> {
  const b = (await readTensorBytes(e, 0, e.byteLength)).slice().buffer
  if (e.dtype === 'I32') return Array.from(new Int32Array(b))
  return Array.from(new BigInt64Array(b), (v) => {
    if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < -BigInt(Number.MAX_SAFE_INTEGER))
      throw new WhittleError('format', e.file, `tensor "${e.name}" holds ${v}, beyond any tensor size`)
    return Number(v)
  })
}

const SPARSE_VALUE_SIZES: ReadonlyMap<DType, number> = new Map<DType, number>([
  ['F32', 4],
  ['F16', 2],
  ['BF16', 2],
])

/** config.json declares compressed-tensors sparse compression (sparsity_config with a format other than dense). */
function declaresSparsity(q: Record<string, unknown>): boolean {
  const s = q.sparsity_config
  return isObject(s) && s.format !== undefined && s.format !== null && s.format !== 'dense'
}

/**
 * compressed-tensors' sparse formats: `<m>.shape`, `<m>.compressed`, `<m>.bitmask` (+ `<m>.row_offsets`
 * for sparse-bitmask) become `<m>.weight`, decoded as numerics/sparse-bitmask.ts documents.
 */
async function sparseModules(files: ModelFiles, q: Record<string, unknown>): Promise<ModelFiles> {
  const format = (q.sparsity_config as Record<string, unknown>).format
  if (format !== 'sparse-bitmask' && format !== 'sparse-24-bitmask')
    throw new WhittleError(
      'unsupported',
      files.path,
      `compressed-tensors sparsity format ${showValue(format)} is not supported (sparse-bitmask and sparse-24-bitmask are)`,
    )
  if (q.config_groups !== undefined && q.config_groups !== null)
    throw new WhittleError(
      'unsupported',
      files.path,
      `compressed-tensors checkpoints that are both quantized and ${format} are not supported`,
    )
  const twoFour = format === 'sparse-24-bitmask'
  const modules = modulesWith(
    files.tensors,
    twoFour ? ['shape', 'compressed', 'bitmask'] : ['shape', 'compressed', 'bitmask', 'row_offsets'],
  )
  const weights = new Map<string, TensorEntry>()
  for (const [name, m] of modules) {
    const shapeEntry = need(m, name, 'shape', ['I64', 'I32'])
    const compressed = need(m, name, 'compressed', [...SPARSE_VALUE_SIZES.keys()])
    const bitmask = need(m, name, 'bitmask', ['U8'])
    const rowOffsets = twoFour ? undefined : need(m, name, 'row_offsets', ['I64', 'I32'])
    expectShape(shapeEntry, twoFour ? [2, 1] : [2], 'rows and columns of the weight')
    const [rows, cols] = await exactInts(shapeEntry)
    if (![rows, cols].every((d) => d > 0 && d <= 0x7fffffff) || (twoFour && cols % 4 !== 0))
      throw new WhittleError(
        'format',
        shapeEntry.file,
        `tensor "${shapeEntry.name}" holds [${rows}, ${cols}], not two positive sizes${twoFour ? ' with columns a multiple of 4' : ''}`,
      )
    expectShape(bitmask, [rows, Math.ceil(cols / 8)], `${rows} rows of ${cols} bits`)
    expectShape(compressed, twoFour ? [rows, cols / 2] : [null], twoFour ? '2 of every 4 values' : 'the stored values')
    if (rowOffsets) expectShape(rowOffsets, [rows], 'one offset per row')
    const elementSize = SPARSE_VALUE_SIZES.get(compressed.dtype)!
    weights.set(name, {
      name: `${name}.weight`,
      dtype: 'F32',
      shape: [rows, cols],
      file: compressed.file,
      offset: compressed.offset,
      byteLength: rows * cols * 4,
      unpack: async () => {
        try {
          const dense = decompressBitmask(
            await readTensorBytes(compressed, 0, compressed.byteLength),
            await readTensorBytes(bitmask, 0, bitmask.byteLength),
            rows,
            cols,
            elementSize,
            rowOffsets ? await exactInts(rowOffsets) : null,
          )
          const out = new Float32Array(rows * cols)
          decodeToF32(compressed.dtype, dense, rows * cols, out)
          return out
        } catch (e) {
          throw e instanceof WhittleError
            ? new WhittleError('format', compressed.file, `sparse module "${name}": ${e.message}`)
            : e
        }
      },
    })
  }
  return replaceModules(files, modules, weights)
}

/** Scale dtypes the 8-bit formats store (the model's float dtype, or F32). */
const W8A8_SCALE_DTYPES: readonly DType[] = ['F32', 'F16', 'BF16']

/**
 * compressed-tensors' int-quantized / float-quantized formats (W8A8 and FP8 checkpoints): a quantized
 * module keeps `<m>.weight` (I8 codes or F8_E4M3 values) beside `<m>.weight_scale` [rows, 1] and, when
 * asymmetric, `<m>.weight_zero_point` [rows, 1]; the layout is numerics/compressed-tensors-w8a8.ts. The
 * weight's entry is replaced by an F32 one decoding to (weight − zero_point) · weight_scale.
 */
function w8a8Modules(files: ModelFiles, format: W8a8Format): ModelFiles {
  const byName = new Map(files.tensors.map((t, i) => [t.name, i]))
  const modules = modulesWith(files.tensors, ['weight_scale', 'weight_zero_point'])
  const weights = new Map<string, TensorEntry>()
  const weightDType = W8A8_WEIGHT_DTYPE[format]
  for (const [name, m] of modules) {
    const at = byName.get(`${name}.weight`)
    if (at === undefined) {
      const any = m.parts.values().next().value as TensorEntry
      throw new WhittleError('format', any.file, `quantized module "${name}" lacks its weight tensor`)
    }
    m.parts.set('weight', files.tensors[at])
    m.first = Math.min(m.first, at)
    const weight = need(m, name, 'weight', [weightDType])
    const scale = need(m, name, 'weight_scale', W8A8_SCALE_DTYPES)
    const zero = m.parts.has('weight_zero_point') ? need(m, name, 'weight_zero_point', ['I8']) : undefined
    expectShape(weight, [null, null], 'outputs × inputs')
    const [rows, cols] = weight.shape
    expectShape(scale, [rows, 1], `one scale per output channel of ${rows}`)
    if (zero) expectShape(zero, [rows, 1], `one zero point per output channel of ${rows}`)
    weights.set(name, {
      name: weight.name,
      dtype: 'F32',
      shape: [rows, cols],
      file: weight.file,
      offset: weight.offset,
      byteLength: rows * cols * 4,
      unpack: async () =>
        dequantizeW8a8(
          format,
          await readTensorBytes(weight, 0, weight.byteLength),
          zero ? new Int8Array((await readTensorBytes(zero, 0, zero.byteLength)).slice().buffer) : null,
          await readTensorF32(scale),
          rows,
          cols,
        ),
    })
  }
  return replaceModules(files, modules, weights)
}

/**
 * The run-time activation quantization a compressed-tensors config declares: one config group whose
 * input_activations are 8-bit, per token, dynamic and symmetric (int: W8A8-INT8, float: FP8_DYNAMIC);
 * null for anything else (weight-only checkpoints, static or per-tensor activation scales).
 */
export function declaredActivations(files: Pick<ModelFiles, 'config'>): ActivationScheme | null {
  const q = files.config?.quantization_config
  if (!isObject(q) || q.quant_method !== 'compressed-tensors' || !isObject(q.config_groups)) return null
  const groups = Object.values(q.config_groups)
  const a = groups.length === 1 && isObject(groups[0]) ? groups[0].input_activations : null
  if (!isObject(a) || a.num_bits !== 8 || a.strategy !== 'token' || a.dynamic !== true || a.symmetric === false)
    return null
  return a.type === 'float' ? 'fp8-per-token' : a.type === 'int' ? 'int8-per-token' : null
}

/** The model with packed Linears presented as F32 weights; unchanged when config.json declares no packing. */
export async function unpackQuantizedLinears(files: ModelFiles): Promise<ModelFiles> {
  const q = files.config?.quantization_config
  if (files.format !== 'safetensors' || !isObject(q)) return files
  if (q.quant_method === 'gptq') return gptqModules(files, q)
  if (q.quant_method === 'compressed-tensors' && declaresSparsity(q)) return sparseModules(files, q)
  if (q.quant_method === 'compressed-tensors' && (q.format === 'int-quantized' || q.format === 'float-quantized'))
    return w8a8Modules(files, q.format)
  if (q.quant_method === 'compressed-tensors') return compressedTensorsModules(files, q)
  return files
}
