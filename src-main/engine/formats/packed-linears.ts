// Checkpoints that store Linears packed (GPTQ's qweight/qzeros/scales/g_idx, compressed-tensors'
// weight_packed/weight_scale/...) open as ordinary models: each packed module becomes one F32
// `<module>.weight` entry that decodes on read, so inspection, the forward pass and perplexity see the
// weights a loader would compute. The packed parts are checked at open (dtypes, shapes, the module's
// parts all present); the bit layouts are those of export/gptq-pack.ts, where they are documented.

import { WhittleError } from '../errors'
import { dequantizeCompressedTensors } from '../export/compressed-tensors-export'
import { dequantizeGptq, packedWords, type GptqCheckpointFormat } from '../export/gptq-pack'
import { readTensorBytes, readTensorF32 } from './read'
import type { ModelFiles, TensorEntry } from './types'

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

function virtualWeight(module: string, at: TensorEntry, rows: number, cols: number, unpack: () => Promise<Float32Array>): TensorEntry {
  return { name: `${module}.weight`, dtype: 'F32', shape: [rows, cols], file: at.file, offset: at.offset, byteLength: rows * cols * 4, unpack }
}

function need(m: Module, part: string, dtype: string, where: string): TensorEntry {
  const e = m.parts.get(part)
  if (!e) throw new WhittleError('format', where, `packed module lacks its ${part} tensor`)
  if (e.dtype !== dtype) throw new WhittleError('format', where, `${part} is ${e.dtype}, expected ${dtype}`)
  return e
}

function replaceModules(files: ModelFiles, modules: Map<string, Module>, weights: Map<string, TensorEntry>): ModelFiles {
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
  if (typeof bits !== 'number' || ![2, 3, 4, 8].includes(bits)) throw new WhittleError('format', files.path, `quantization_config.bits ${JSON.stringify(bits)} is not 2, 3, 4 or 8`)
  const groupSize = typeof q.group_size === 'number' ? q.group_size : -1
  const format: GptqCheckpointFormat = q.checkpoint_format === 'gptq_v2' ? 'gptq_v2' : 'gptq'
  const modules = modulesWith(files.tensors, ['qweight', 'qzeros', 'scales', 'g_idx'])
  const weights = new Map<string, TensorEntry>()
  for (const [name, m] of modules) {
    const where = `${files.path}: ${name}`
    const qweight = need(m, 'qweight', 'I32', where), qzeros = need(m, 'qzeros', 'I32', where), scales = need(m, 'scales', 'F16', where)
    const gIdxEntry = m.parts.get('g_idx')
    if (qweight.shape.length !== 2 || scales.shape.length !== 2) throw new WhittleError('format', where, 'qweight and scales must be 2-D')
    const rows = qweight.shape[1]
    const cols = gIdxEntry ? gIdxEntry.shape[0] : Math.floor((qweight.shape[0] * 32) / bits)
    const groups = scales.shape[0]
    if (packedWords(cols, bits) !== qweight.shape[0]) throw new WhittleError('format', where, `qweight has ${qweight.shape[0]} rows of words, ${cols} inputs at ${bits} bits need ${packedWords(cols, bits)}`)
    if (scales.shape[1] !== rows || qzeros.shape[0] !== groups || qzeros.shape[1] !== packedWords(rows, bits)) {
      throw new WhittleError('format', where, `scales ${JSON.stringify(scales.shape)} / qzeros ${JSON.stringify(qzeros.shape)} do not fit ${rows} outputs and ${groups} groups`)
    }
    weights.set(name, virtualWeight(name, qweight, rows, cols, async () => {
      const gIdx = gIdxEntry ? await int32s(gIdxEntry) : Int32Array.from({ length: cols }, (_, c) => (groupSize > 0 ? Math.floor(c / groupSize) : 0))
      try {
        return dequantizeGptq({ qweight: await int32s(qweight), qzeros: await int32s(qzeros), scales: await uint16s(scales), gIdx }, rows, cols, bits, format)
      } catch (e) {
        throw e instanceof WhittleError ? new WhittleError('format', where, e.message) : e
      }
    }))
  }
  return replaceModules(files, modules, weights)
}

async function compressedTensorsModules(files: ModelFiles, q: Record<string, unknown>): Promise<ModelFiles> {
  if (q.format !== 'pack-quantized') throw new WhittleError('unsupported', files.path, `compressed-tensors format "${String(q.format)}" is not supported (pack-quantized is)`)
  const groups = isObject(q.config_groups) ? Object.values(q.config_groups) : []
  if (groups.length !== 1 || !isObject(groups[0]) || !isObject(groups[0].weights)) {
    throw new WhittleError('unsupported', files.path, 'compressed-tensors checkpoints with other than one config group are not supported')
  }
  const w = groups[0].weights
  const bits = w.num_bits
  if (typeof bits !== 'number' || !Number.isInteger(bits) || bits < 1 || bits > 8) throw new WhittleError('format', files.path, `num_bits ${JSON.stringify(bits)} is not 1–8`)
  const groupSize = typeof w.group_size === 'number' ? w.group_size : -1
  const modules = modulesWith(files.tensors, ['weight_packed', 'weight_scale', 'weight_zero_point', 'weight_shape', 'weight_g_idx'])
  const weights = new Map<string, TensorEntry>()
  for (const [name, m] of modules) {
    const where = `${files.path}: ${name}`
    const packed = need(m, 'weight_packed', 'I32', where), shapeEntry = need(m, 'weight_shape', 'I32', where)
    const scale = m.parts.get('weight_scale')
    if (!scale) throw new WhittleError('format', where, 'packed module lacks its weight_scale tensor')
    if (shapeEntry.shape.join() !== '2') throw new WhittleError('format', where, 'weight_shape must hold 2 values')
    const [rows, cols] = await int32s(shapeEntry)
    if (!(rows > 0 && cols > 0) || packed.shape.join() !== `${rows},${packedWords(cols, bits)}`) {
      throw new WhittleError('format', where, `weight_packed ${JSON.stringify(packed.shape)} does not hold a ${rows}×${cols} weight at ${bits} bits`)
    }
    const zero = m.parts.get('weight_zero_point'), gIdx = m.parts.get('weight_g_idx')
    weights.set(name, virtualWeight(name, packed, rows, cols, async () => {
      try {
        return dequantizeCompressedTensors({
          packed: await int32s(packed), scale: await readTensorF32(scale), zeroPoint: zero ? await int32s(zero) : null,
          shape: Int32Array.of(rows, cols), gIdx: gIdx ? await int32s(gIdx) : null,
        }, bits, groupSize)
      } catch (e) {
        throw e instanceof WhittleError ? new WhittleError('format', where, e.message) : e
      }
    }))
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
