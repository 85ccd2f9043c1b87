// Checkpoints that store Linears packed (GPTQ's qweight/qzeros/scales/g_idx, compressed-tensors'
// weight_packed/weight_scale/...) open as ordinary models: each packed module becomes one F32
// `<module>.weight` entry that decodes on read, so inspection, the forward pass and perplexity see the
// weights a loader would compute. The packed parts are checked at open (dtypes, shapes, the module's
// parts all present); the bit layouts are those of numerics/gptq-pack.ts and
// numerics/compressed-tensors-pack.ts, where they are documented.

import { WhittleError, showValue } from '../errors'
import { packedWords } from '../numerics/bit-fields'
import { dequantizeCompressedTensors } from '../numerics/compressed-tensors-pack'
import { dequantizeGptq, type GptqCheckpointFormat } from '../numerics/gptq-pack'
import { readTensorBytes, readTensorF32 } from './read'
import type { DType, ModelFiles, TensorEntry } from './types'

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
    weights.set(
      name,
      virtualWeight(name, qweight, rows, cols, async () => {
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
    weights.set(
      name,
      virtualWeight(name, packed, rows, cols, async () => {
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

/** The model with packed Linears presented as F32 weights; unchanged when config.json declares no packing. */
export async function unpackQuantizedLinears(files: ModelFiles): Promise<ModelFiles> {
  const q = files.config?.quantization_config
  if (files.format !== 'safetensors' || !isObject(q)) return files
  if (q.quant_method === 'gptq') return gptqModules(files, q)
  if (q.quant_method === 'compressed-tensors') return compressedTensorsModules(files, q)
  return files
}
