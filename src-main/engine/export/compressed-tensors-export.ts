// compressed-tensors "pack-quantized" export (what vLLM serves from llm-compressor): each quantized
// Linear becomes weight_packed / weight_scale / weight_shape (+ weight_zero_point when asymmetric,
// + weight_g_idx with act-order); other tensors are written as the compressed model holds them.
// The layout and its decoding are numerics/compressed-tensors-pack.ts.

import path from 'node:path'
import { WhittleError } from '../errors'
import { decodeToF32, readTensorF32 } from '../formats/read'
import { writeSafetensors, type SafetensorsTensorInput } from '../formats/safetensors-writer'
import type { ModelView } from '../model/model-view'
import { isBlockLinear } from '../compress/recipe/targets'
import { codesFromWeights, type UniformGridRecord } from '../compress/quant/record'
import { packedWords } from '../numerics/bit-fields'
import {
  dequantizeCompressedTensors,
  packCompressedTensorsWeight,
  packCompressedTensorsZeros,
} from '../numerics/compressed-tensors-pack'
import { f32ToBf16Bits, f32ToF16Bits } from '../numerics/float-encodings'
import { assertFreeDestination, writeFolderAtomically } from './atomic-folder'
import { verifyQuantizedFolder } from './verify-quantized-folder'
import {
  checkRecords,
  copySidecars,
  moduleOf,
  readInt32,
  tensorChunks,
  uniformSettings,
  writeJson,
  type UniformSettings,
} from './gptq-export'

type ScaleDType = 'F32' | 'F16' | 'BF16'

const TORCH_DTYPES: Record<string, ScaleDType> = { float32: 'F32', float16: 'F16', bfloat16: 'BF16' }

/** The model's float dtype: config.json's torch_dtype, else F32. */
export function modelFloatDType(view: ModelView): ScaleDType {
  const declared = view.files.config?.torch_dtype ?? view.files.config?.dtype
  return (typeof declared === 'string' && Object.hasOwn(TORCH_DTYPES, declared) && TORCH_DTYPES[declared]) || 'F32'
}

function encodeScalar(v: number, dtype: ScaleDType): number {
  return dtype === 'F16' ? f32ToF16Bits(v) : dtype === 'BF16' ? f32ToBf16Bits(v) : v
}

/** Scales go in the model's dtype when every one survives it exactly, else in F32 (the decode must match). */
export function scaleDType(view: ModelView, records: ReadonlyMap<string, UniformGridRecord>): ScaleDType {
  const want = modelFloatDType(view)
  if (want === 'F32') return 'F32'
  const back = new Float32Array(1)
  for (const r of records.values()) {
    for (const s of r.scales) {
      const h = new Uint16Array([encodeScalar(s, want)])
      decodeToF32(want, new Uint8Array(h.buffer), 1, back)
      if (back[0] !== s) return 'F32'
    }
  }
  return want
}

/** record.scales [groups, rows] → [rows, groups] in dtype, as bytes. */
function scaleBytes(r: UniformGridRecord, dtype: ScaleDType): Uint8Array {
  const groups = r.scales.length / r.rows
  const t = new Float32Array(r.scales.length)
  for (let g = 0; g < groups; g++)
    for (let row = 0; row < r.rows; row++) t[row * groups + g] = r.scales[g * r.rows + row]
  if (dtype === 'F32') return new Uint8Array(t.buffer)
  const h = new Uint16Array(t.length)
  for (let i = 0; i < t.length; i++) h[i] = encodeScalar(t[i], dtype)
  return new Uint8Array(h.buffer)
}

export function compressedTensorsConfig(s: UniformSettings, ignore: string[]): Record<string, unknown> {
  return {
    quant_method: 'compressed-tensors',
    format: 'pack-quantized',
    quantization_status: 'compressed',
    ignore,
    config_groups: {
      group_0: {
        targets: ['Linear'],
        weights: {
          num_bits: s.bits,
          type: 'int',
          symmetric: s.sym,
          strategy: s.groupSize > 0 ? 'group' : 'channel',
          group_size: s.groupSize > 0 ? s.groupSize : null,
          actorder: s.actOrder ? 'group' : null,
          dynamic: false,
          observer: 'minmax',
        },
        input_activations: null,
        output_activations: null,
      },
    },
  }
}

/** Linear modules left unquantized, which loaders must not expect packed: lm_head and any block Linear without a record. */
export function ignoredModules(view: ModelView, records: ReadonlyMap<string, UniformGridRecord>): string[] {
  const ignore = view.tensors.filter((t) => isBlockLinear(t) && !records.has(t.name)).map((t) => moduleOf(t.name))
  return ['lm_head', ...ignore]
}

/**
 * The compressed-tensors layouts' one writer: every tensor of a safetensors source as it is, except each
 * recorded Linear, which `packed` turns into its stored parts; then config.json with `quantizationConfig`
 * and the sidecars. Returns the files written.
 */
export async function writePackedSafetensors(
  view: ModelView,
  records: ReadonlyMap<string, UniformGridRecord>,
  dir: string,
  quantizationConfig: Record<string, unknown>,
  packed: (module: string, record: UniformGridRecord, name: string) => SafetensorsTensorInput[],
): Promise<string[]> {
  const tensors: SafetensorsTensorInput[] = []
  for (const t of view.files.tensors) {
    const r = records.get(t.name)
    if (r) tensors.push(...packed(moduleOf(t.name), r, t.name))
    else {
      const e = view.entry(t.name)
      tensors.push({ name: e.name, dtype: e.dtype, shape: e.shape, data: tensorChunks(e) })
    }
  }
  await writeSafetensors(path.join(dir, 'model.safetensors'), tensors, { format: 'pt', producer: 'whittle' })
  await writeJson(path.join(dir, 'config.json'), {
    ...(view.files.config ?? {}),
    quantization_config: quantizationConfig,
  })
  return ['model.safetensors', 'config.json', ...(await copySidecars(view, dir))]
}

/** The source must be safetensors: the packed layouts keep every other tensor as it is stored. */
export function requireSafetensorsSource(view: ModelView): void {
  if (view.files.format !== 'safetensors')
    throw new WhittleError('unsupported', view.files.path, 'compressed-tensors export needs a safetensors source')
}

export async function writeCompressedTensors(
  view: ModelView,
  records: ReadonlyMap<string, UniformGridRecord>,
  dir: string,
): Promise<string[]> {
  requireSafetensorsSource(view)
  checkRecords(view, records, dir)
  const settings = uniformSettings(records, dir)
  const sDType = scaleDType(view, records)
  const config = compressedTensorsConfig(settings, ignoredModules(view, records))
  return writePackedSafetensors(view, records, dir, config, (m, r, name) => {
    const groups = r.scales.length / r.rows
    const parts: SafetensorsTensorInput[] = [
      {
        name: `${m}.weight_packed`,
        dtype: 'I32',
        shape: [r.rows, packedWords(r.cols, r.bits)],
        data: async function* () {
          const { codes } = codesFromWeights(r, await readTensorF32(view.entry(name)), name)
          yield i32Bytes(packCompressedTensorsWeight(codes, r.rows, r.cols, r.bits))
        },
      },
      { name: `${m}.weight_scale`, dtype: sDType, shape: [r.rows, groups], data: () => [scaleBytes(r, sDType)] },
    ]
    if (!settings.sym) {
      // zeros [groups, rows] → [rows, groups], packed along the output dimension.
      parts.push({
        name: `${m}.weight_zero_point`,
        dtype: 'I32',
        shape: [packedWords(r.rows, r.bits), groups],
        data: () => [i32Bytes(packCompressedTensorsZeros(r.zeros, groups, r.rows, r.bits))],
      })
    }
    parts.push({ name: `${m}.weight_shape`, dtype: 'I32', shape: [2], data: i32Bytes(Int32Array.of(r.rows, r.cols)) })
    if (settings.actOrder)
      parts.push({ name: `${m}.weight_g_idx`, dtype: 'I32', shape: [r.cols], data: i32Bytes(r.gIdx.slice()) })
    return parts
  })
}

function i32Bytes(a: Int32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength)
}

export async function verifyCompressedTensors(
  view: ModelView,
  records: ReadonlyMap<string, UniformGridRecord>,
  dir: string,
): Promise<void> {
  const settings = uniformSettings(records, dir)
  await verifyQuantizedFolder(view, records, dir, async (m, r, need) => {
    const groups = r.scales.length / r.rows
    return dequantizeCompressedTensors(
      {
        packed: await readInt32(need(`${m}.weight_packed`, 'I32', [r.rows, packedWords(r.cols, r.bits)])),
        scale: await readTensorF32(need(`${m}.weight_scale`, null, [r.rows, groups])),
        zeroPoint: settings.sym
          ? null
          : await readInt32(need(`${m}.weight_zero_point`, 'I32', [packedWords(r.rows, r.bits), groups])),
        shape: await readInt32(need(`${m}.weight_shape`, 'I32', [2])),
        gIdx: settings.actOrder ? await readInt32(need(`${m}.weight_g_idx`, 'I32', [r.cols])) : null,
      },
      r.bits,
      settings.groupSize,
    )
  })
}

/** Writes a verified compressed-tensors checkpoint folder at dest (which must not exist). */
export async function exportCompressedTensors(
  view: ModelView,
  records: ReadonlyMap<string, UniformGridRecord>,
  dest: string,
): Promise<string> {
  await assertFreeDestination(dest, [view.files.path, ...view.files.files])
  return writeFolderAtomically(
    dest,
    async (dir) => {
      await writeCompressedTensors(view, records, dir)
    },
    (dir) => verifyCompressedTensors(view, records, dir),
  )
}
