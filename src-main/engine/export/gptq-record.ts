// A uniformly quantized Linear's record (RTN, GPTQ; compress/quant/record.ts) checked and laid out as
// GPTQ tensors. The bit layouts themselves live in numerics/ (gptq-pack.ts, bit-fields.ts).
//
// GPTQ checkpoints store scales as fp16, so only a quantizer that itself used fp16 scales (scale_dtype
// f16, the default) yields a checkpoint that decodes to exactly the weights the engine measured.

import { requireIntegerGrid, type UniformGridRecord, type UniformQuantRecord } from '../compress/quant/record'
import { WhittleError } from '../errors'
import { encodeF16Array, roundToF16 } from '../numerics/float-encodings'
import { GPTQ_BITS, packGptqWeight, packGptqZeros, type GptqCheckpointFormat } from '../numerics/gptq-pack'

/** Checks a record's sizes and value ranges (codes too, when it has them); `where` names the tensor in the error. */
export function validateRecord(r: UniformGridRecord & { codes?: Uint8Array }, where: string): void {
  const bad = (problem: string): WhittleError =>
    new WhittleError('validation', null, `${where}: quantization record ${problem}`)
  requireIntegerGrid(r, where)
  if (!Number.isInteger(r.bits) || r.bits < 1 || r.bits > 8) throw bad(`has ${r.bits} bits (1–8 supported)`)
  if (!Number.isSafeInteger(r.rows) || !Number.isSafeInteger(r.cols) || r.rows < 1 || r.cols < 1)
    throw bad(`has a bad shape ${r.rows}×${r.cols}`)
  if (r.codes && r.codes.length !== r.rows * r.cols)
    throw bad(`has ${r.codes.length} codes for ${r.rows}×${r.cols} weights`)
  if (r.gIdx.length !== r.cols) throw bad(`has ${r.gIdx.length} g_idx entries for ${r.cols} inputs`)
  if (r.scales.length === 0 || r.scales.length % r.rows !== 0 || r.zeros.length !== r.scales.length) {
    throw bad(`has ${r.scales.length} scales and ${r.zeros.length} zeros, not groups × ${r.rows}`)
  }
  const groups = r.scales.length / r.rows
  const maxq = 2 ** r.bits - 1
  for (const g of r.gIdx)
    if (!Number.isInteger(g) || g < 0 || g >= groups) throw bad(`has g_idx ${g} outside 0..${groups - 1}`)
  for (const q of r.codes ?? []) if (q > maxq) throw bad(`has code ${q} above ${maxq}`)
  for (const z of r.zeros) if (z < 0 || z > maxq) throw bad(`has zero point ${z} outside 0..${maxq}`)
  for (const s of r.scales)
    if (!Number.isFinite(s) || roundToF16(s) !== s) throw bad(`has scale ${s}, not a finite fp16 value`)
}

export interface GptqLinearTensors {
  /** int32 [ceil(in·b/32), out] */
  qweight: Int32Array
  /** int32 [groups, ceil(out·b/32)] */
  qzeros: Int32Array
  /** fp16 [groups, out] */
  scales: Uint16Array
  /** int32 [in] */
  gIdx: Int32Array
  groups: number
}

export function packGptqLinear(r: UniformQuantRecord, format: GptqCheckpointFormat, where: string): GptqLinearTensors {
  validateRecord(r, where)
  if (!GPTQ_BITS.includes(r.bits))
    throw new WhittleError('unsupported', null, `${where}: GPTQ checkpoints hold 2, 3, 4 or 8 bits, not ${r.bits}`)
  const groups = r.scales.length / r.rows
  return {
    qweight: packGptqWeight(r.codes, r.rows, r.cols, r.bits),
    qzeros: packGptqZeros(r.zeros, groups, r.rows, r.bits, format),
    scales: encodeF16Array(r.scales),
    gIdx: r.gIdx.slice(),
    groups,
  }
}
