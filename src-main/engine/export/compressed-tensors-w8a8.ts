// compressed-tensors W8A8 exports (what vLLM serves from llm-compressor's W8A8 and FP8_DYNAMIC schemes):
// - int-quantized: each quantized Linear's `weight` as I8 codes with one `weight_scale` per output channel
//   ([rows, 1]; `weight_zero_point` I8 [rows, 1] when asymmetric), from SmoothQuant, LLM.int8 runs that
//   kept no fp16 column, and RTN/GPTQ w8 per channel;
// - float-quantized: `weight` as F8_E4M3 with `weight_scale` [rows, 1], from the fp8 method.
// A loader dequantizes (weight − zero_point) · weight_scale in the scale's dtype, so the scales are
// written in the model's dtype only when every one survives it exactly, else in F32. The activation
// scheme in quantization_config is the one the compressed model runs with (dynamic per-token int8 or
// fp8 at every Linear input); a weight-only result (LLM.int8, RTN) declares no input activations
// (vLLM's W8A16 schemes). SmoothQuant's extra int8 rounding of the q/k/v outputs has no place in the
// scheme: serving engines quantize Linear inputs only.

import { WhittleError } from '../errors'
import { codesFromWeights, isSequentialGIdx, type UniformGridRecord } from '../compress/quant/record'
import { readTensorBytes, readTensorF32 } from '../formats/read'
import type { SafetensorsTensorInput } from '../formats/safetensors-writer'
import type { ActivationScheme } from '../model/loaded-model'
import type { ModelView } from '../model/model-view'
import { f32ToBf16Bits, f32ToF16Bits, f32ToF8E4M3Bits, f8e4m3ToF32 } from '../numerics/float-encodings'
import { dequantizeW8a8, W8A8_WEIGHT_DTYPE, type W8a8Format } from '../numerics/compressed-tensors-w8a8'
import { assertFreeDestination, writeFolderAtomically } from './atomic-folder'
import { verifyQuantizedFolder } from './verify-quantized-folder'
import {
  ignoredModules,
  requireSafetensorsSource,
  scaleDType,
  writePackedSafetensors,
} from './compressed-tensors-export'

interface W8a8Settings {
  format: W8a8Format
  sym: boolean
}

const f = Math.fround

/** The format every record agrees on; refuses records no W8A8 checkpoint can hold, naming the tensor. */
export function w8a8Settings(records: ReadonlyMap<string, UniformGridRecord>, where: string): W8a8Settings {
  const all = [...records]
  if (all.length === 0)
    throw new WhittleError(
      'validation',
      where,
      'no 8-bit per-channel Linear to export (compressed-tensors-w8a8 needs fp8, smoothquant, llm_int8 without fp16 columns, or rtn/gptq w8 per channel)',
    )
  const formatOf = (r: UniformGridRecord): W8a8Format =>
    r.encoding === 'fp8-e4m3' ? 'float-quantized' : 'int-quantized'
  const [firstName, first] = all[0]
  for (const [name, r] of all) {
    const perChannel = (r.groupSize <= 0 || r.groupSize >= r.cols) && isSequentialGIdx(r.gIdx, r.groupSize)
    if (r.bits !== 8 || !perChannel)
      throw new WhittleError(
        'unsupported',
        where,
        `${name} is quantized to ${r.bits} bits${perChannel ? '' : ' in groups'}; compressed-tensors-w8a8 holds 8-bit weights with one scale per output channel (use compressed-tensors or gptq)`,
      )
    if (formatOf(r) !== formatOf(first) || r.sym !== first.sym)
      throw new WhittleError(
        'unsupported',
        where,
        `${name} is ${formatOf(r)}${r.sym ? '' : ' asymmetric'}, ${firstName} is ${formatOf(first)}${first.sym ? '' : ' asymmetric'}; one checkpoint holds one scheme`,
      )
  }
  return { format: formatOf(first), sym: first.sym }
}

/**
 * Every record against the tensor it replaces. Unlike GPTQ's records, the scales need not be fp16: they are
 * stored in F32 unless the model's dtype holds every one exactly.
 */
function checkW8a8Records(view: ModelView, records: ReadonlyMap<string, UniformGridRecord>, where: string): void {
  for (const [name, r] of records) {
    const place = view.arch.places[name]
    if (!name.endsWith('.weight') || !place)
      throw new WhittleError('validation', where, `${name}: not a Linear weight of the model, so it cannot be stored`)
    if (place.transposed)
      throw new WhittleError('unsupported', where, `${name}: Conv1D weights stored [in, out] cannot be stored yet`)
    const shape = view.entry(name).shape
    if (shape.length !== 2 || shape[0] !== r.rows || shape[1] !== r.cols || r.scales.length !== r.rows)
      throw new WhittleError(
        'validation',
        where,
        `${name}: the record is ${r.rows}×${r.cols} with ${r.scales.length} scales, the tensor is ${JSON.stringify(shape)}`,
      )
    const bad = r.scales.findIndex((v) => !(Number.isFinite(v) && v > 0))
    if (bad >= 0)
      throw new WhittleError(
        'validation',
        where,
        `${name}: row ${bad} has scale ${r.scales[bad]}, not a positive number`,
      )
  }
}

/** quantization_config for the format and the model's run-time activation scheme (null: weight-only). */
export function w8a8Config(
  s: W8a8Settings,
  activations: ActivationScheme | null,
  ignore: string[],
): Record<string, unknown> {
  const type = s.format === 'float-quantized' ? 'float' : 'int'
  return {
    quant_method: 'compressed-tensors',
    format: s.format,
    quantization_status: 'compressed',
    ignore,
    config_groups: {
      group_0: {
        targets: ['Linear'],
        weights: {
          num_bits: 8,
          type,
          symmetric: s.sym,
          strategy: 'channel',
          group_size: null,
          dynamic: false,
          observer: 'minmax',
        },
        input_activations: activations
          ? {
              num_bits: 8,
              type: activations === 'fp8-per-token' ? 'float' : 'int',
              symmetric: true,
              strategy: 'token',
              group_size: null,
              dynamic: true,
              observer: null,
            }
          : null,
        output_activations: null,
      },
    },
  }
}

/** The stored codes of one Linear: I8 (code − 128) or E4M3 bytes, checked to decode to W exactly. */
export function w8a8Codes(r: UniformGridRecord, W: Float32Array, where: string): Uint8Array {
  if (r.encoding !== 'fp8-e4m3') {
    const { codes } = codesFromWeights(r, W, where)
    const out = new Int8Array(codes.length)
    for (let i = 0; i < codes.length; i++) out[i] = codes[i] - 128
    return new Uint8Array(out.buffer)
  }
  const out = new Uint8Array(W.length)
  for (let row = 0; row < r.rows; row++) {
    const s = r.scales[row]
    for (let c = 0; c < r.cols; c++) {
      const at = row * r.cols + c
      const bits = f32ToF8E4M3Bits(f(W[at] / s))
      if (f(f8e4m3ToF32(bits) * s) !== W[at])
        throw new WhittleError(
          'validation',
          null,
          `${where}: weight [${row}, ${c}] = ${W[at]} is not an E4M3 value times its row scale ${s}; a later step changed it, so it cannot be stored as fp8`,
        )
      out[at] = bits
    }
  }
  return out
}

function scaleBytes(scales: Float32Array, dtype: 'F32' | 'F16' | 'BF16'): Uint8Array {
  if (dtype === 'F32') return new Uint8Array(scales.slice().buffer)
  const h = Uint16Array.from(scales, (v) => (dtype === 'F16' ? f32ToF16Bits(v) : f32ToBf16Bits(v)))
  return new Uint8Array(h.buffer)
}

export async function writeCompressedTensorsW8a8(
  view: ModelView,
  records: ReadonlyMap<string, UniformGridRecord>,
  dir: string,
): Promise<string[]> {
  requireSafetensorsSource(view)
  checkW8a8Records(view, records, dir)
  const settings = w8a8Settings(records, dir)
  const sDType = scaleDType(view, records)
  const config = w8a8Config(settings, view.runtime?.activations ?? null, ignoredModules(view, records))
  return writePackedSafetensors(view, records, dir, config, (m, r, name) => {
    const parts: SafetensorsTensorInput[] = [
      {
        name: `${m}.weight`,
        dtype: W8A8_WEIGHT_DTYPE[settings.format],
        shape: [r.rows, r.cols],
        data: async function* () {
          yield w8a8Codes(r, await readTensorF32(view.entry(name)), name)
        },
      },
      { name: `${m}.weight_scale`, dtype: sDType, shape: [r.rows, 1], data: () => [scaleBytes(r.scales, sDType)] },
    ]
    if (!settings.sym) {
      const zp = Int8Array.from(r.zeros, (z) => z - 128)
      parts.push({ name: `${m}.weight_zero_point`, dtype: 'I8', shape: [r.rows, 1], data: new Uint8Array(zp.buffer) })
    }
    return parts
  })
}

/** Re-opens the file and decodes every quantized Linear from its stored parts; each must equal the view's weights bit for bit. */
export async function verifyCompressedTensorsW8a8(
  view: ModelView,
  records: ReadonlyMap<string, UniformGridRecord>,
  dir: string,
): Promise<void> {
  const settings = w8a8Settings(records, dir)
  await verifyQuantizedFolder(
    view,
    records,
    dir,
    async (m, r, need) => {
      const w = need(`${m}.weight`, W8A8_WEIGHT_DTYPE[settings.format], [r.rows, r.cols])
      const zp = settings.sym ? null : need(`${m}.weight_zero_point`, 'I8', [r.rows, 1])
      return dequantizeW8a8(
        settings.format,
        await readTensorBytes(w, 0, w.byteLength),
        zp ? new Int8Array((await readTensorBytes(zp, 0, zp.byteLength)).slice().buffer) : null,
        await readTensorF32(need(`${m}.weight_scale`, null, [r.rows, 1])),
        r.rows,
        r.cols,
      )
    },
    // Integer codes have no −0: a weight rounded to −0 (a small negative) is stored as code 0 and reads
    // back as +0, the same number. Every other bit pattern must match.
    (want) => {
      if (settings.format === 'int-quantized') for (let i = 0; i < want.length; i++) if (want[i] === 0) want[i] = 0
    },
  )
}

/** Writes a verified W8A8 compressed-tensors checkpoint folder at dest (which must not exist). */
export async function exportCompressedTensorsW8a8(
  view: ModelView,
  records: ReadonlyMap<string, UniformGridRecord>,
  dest: string,
): Promise<string> {
  await assertFreeDestination(dest, [view.files.path, ...view.files.files])
  return writeFolderAtomically(
    dest,
    async (dir) => {
      await writeCompressedTensorsW8a8(view, records, dir)
    },
    (dir) => verifyCompressedTensorsW8a8(view, records, dir),
  )
}
