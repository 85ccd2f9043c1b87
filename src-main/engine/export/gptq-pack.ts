// The integer side of a uniformly quantized Linear (RTN, GPTQ) and the bit layouts packed exports use.
//
// A UniformQuantRecord (compress/quant/record.ts) holds what the quantizer decided. GPTQ checkpoints
// store scales as fp16, so only a quantizer that itself used fp16 scales (scale_dtype f16, the default)
// yields a checkpoint that decodes to exactly the weights the engine measured.
//
// GPTQ packing (GPTQModel `qlinear/__init__.py`): each output column's codes form one LSB-first bit
// stream along the input dimension, cut into int32 words; word r of column c is qweight[r, c]. For
// 2/4/8 bits a word holds 32/b whole codes; for 3 bits 32 codes fill exactly 3 words and codes 10 and 21
// straddle a word boundary — the same bits a continuous stream gives, which is how it is written here.
// qzeros packs the zeros of each group the same way along the output dimension.
//
// Zero convention: `gptq` (v1) stores z − 1, `gptq_v2` stores z. GPTQModel converts v2 → v1 for 2/4/8
// bits by subtracting 0x…0101 / 0x…1111 / 0x01010101 from each whole int32 word (a field at 0 borrows
// from the next), and for 3 bits field by field ((z − 1) mod 8); loading adds the same back. Both are
// followed exactly, so a v1 file here round-trips through GPTQModel's loader bit for bit.

import { f16BitsToF32, roundToF16 } from '../compress/quant/fp16'
import { sequentialGIdx, type UniformGridRecord, type UniformQuantRecord } from '../compress/quant/record'
import { WhittleError } from '../errors'
import { f32ToF16Bits } from '../synthetic/float-encode'

export { f16BitsToF32, roundToF16 } from '../compress/quant/fp16'
export { sequentialGIdx, type UniformGridRecord, type UniformQuantRecord } from '../compress/quant/record'

export type GptqCheckpointFormat = 'gptq' | 'gptq_v2'

export const GPTQ_BITS: readonly number[] = [2, 3, 4, 8]

/** Checks a record's sizes and value ranges (codes too, when it has them); `where` names the tensor in the error. */
export function validateRecord(r: UniformGridRecord & { codes?: Uint8Array }, where: string): void {
  const bad = (problem: string): WhittleError => new WhittleError('validation', null, `${where}: quantization record ${problem}`)
  if (!Number.isInteger(r.bits) || r.bits < 1 || r.bits > 8) throw bad(`has ${r.bits} bits (1–8 supported)`)
  if (!Number.isSafeInteger(r.rows) || !Number.isSafeInteger(r.cols) || r.rows < 1 || r.cols < 1) throw bad(`has a bad shape ${r.rows}×${r.cols}`)
  if (r.codes && r.codes.length !== r.rows * r.cols) throw bad(`has ${r.codes.length} codes for ${r.rows}×${r.cols} weights`)
  if (r.gIdx.length !== r.cols) throw bad(`has ${r.gIdx.length} g_idx entries for ${r.cols} inputs`)
  if (r.scales.length === 0 || r.scales.length % r.rows !== 0 || r.zeros.length !== r.scales.length) {
    throw bad(`has ${r.scales.length} scales and ${r.zeros.length} zeros, not groups × ${r.rows}`)
  }
  const groups = r.scales.length / r.rows
  const maxq = 2 ** r.bits - 1
  for (const g of r.gIdx) if (!Number.isInteger(g) || g < 0 || g >= groups) throw bad(`has g_idx ${g} outside 0..${groups - 1}`)
  for (const q of r.codes ?? []) if (q > maxq) throw bad(`has code ${q} above ${maxq}`)
  for (const z of r.zeros) if (z < 0 || z > maxq) throw bad(`has zero point ${z} outside 0..${maxq}`)
  for (const s of r.scales) if (!Number.isFinite(s) || roundToF16(s) !== s) throw bad(`has scale ${s}, not a finite fp16 value`)
}

/** W[r, c] = scale · (q − z), rounded to f32 once, as the quantizers compute their fake-quant weights. */
export function dequantizeRecord(r: UniformQuantRecord): Float32Array {
  const out = new Float32Array(r.rows * r.cols)
  for (let row = 0; row < r.rows; row++) {
    for (let c = 0; c < r.cols; c++) {
      const at = r.gIdx[c] * r.rows + row
      out[row * r.cols + c] = Math.fround(r.scales[at] * (r.codes[row * r.cols + c] - r.zeros[at]))
    }
  }
  return out
}

export function isSequentialGIdx(gIdx: Int32Array, groupSize: number): boolean {
  const want = sequentialGIdx(gIdx.length, groupSize)
  return want.every((v, i) => v === gIdx[i])
}

/** int32 words needed for `count` values of `bits` bits. */
export function packedWords(count: number, bits: number): number {
  return Math.ceil((count * bits) / 32)
}

/**
 * Writes value number `index` of a bit stream (LSB first) into `words`, where stream word k lives at
 * words[base + k·stride]. Values wider than what is left of a word continue in the next one.
 */
function putField(words: Uint32Array, base: number, stride: number, index: number, bits: number, value: number): void {
  const bit = index * bits
  const word = bit >>> 5
  const shift = bit & 31
  words[base + word * stride] |= value << shift
  if (shift + bits > 32) words[base + (word + 1) * stride] |= value >>> (32 - shift)
}

function getField(words: Uint32Array, base: number, stride: number, index: number, bits: number): number {
  const bit = index * bits
  const word = bit >>> 5
  const shift = bit & 31
  let v = words[base + word * stride] >>> shift
  if (shift + bits > 32) v |= words[base + (word + 1) * stride] << (32 - shift)
  return v & ((1 << bits) - 1)
}

function asWords(a: Int32Array): Uint32Array {
  return new Uint32Array(a.buffer, a.byteOffset, a.length)
}

/** GPTQ qweight: codes [out, in] → int32 [ceil(in·b/32), out], packed along the input dimension. */
export function packGptqWeight(codes: Uint8Array, out: number, inputs: number, bits: number): Int32Array {
  const words = packedWords(inputs, bits)
  const packed = new Int32Array(words * out)
  const u = asWords(packed)
  for (let c = 0; c < out; c++) for (let i = 0; i < inputs; i++) putField(u, c, out, i, bits, codes[c * inputs + i])
  return packed
}

/** Inverse of packGptqWeight: codes [out, in]. */
export function unpackGptqWeight(qweight: Int32Array, out: number, inputs: number, bits: number): Uint8Array {
  if (qweight.length !== packedWords(inputs, bits) * out) {
    throw new WhittleError('format', null, `qweight has ${qweight.length} words, ${inputs} inputs × ${out} outputs at ${bits} bits need ${packedWords(inputs, bits) * out}`)
  }
  const codes = new Uint8Array(out * inputs)
  const u = asWords(qweight)
  for (let c = 0; c < out; c++) for (let i = 0; i < inputs; i++) codes[c * inputs + i] = getField(u, c, out, i, bits)
  return codes
}

/** 1 in every whole field of a 32-bit word: what GPTQModel subtracts for v1 at 2/4/8 bits. */
function onePerField(bits: number): number {
  let w = 0
  for (let s = 0; s + bits <= 32; s += bits) w = (w | (1 << s)) >>> 0
  return w
}

/** GPTQ qzeros: zeros [groups, out] → int32 [groups, ceil(out·b/32)], in the v1 or v2 convention. */
export function packGptqZeros(zeros: Int32Array, groups: number, out: number, bits: number, format: GptqCheckpointFormat): Int32Array {
  const words = packedWords(out, bits)
  const packed = new Int32Array(groups * words)
  const u = asWords(packed)
  const mask = (1 << bits) - 1
  // 3-bit v1 shifts each field (fields straddle words); 2/4/8-bit v1 subtracts per word, as GPTQModel does.
  const perField = format === 'gptq' && 32 % bits !== 0
  for (let g = 0; g < groups; g++) {
    for (let c = 0; c < out; c++) {
      const z = zeros[g * out + c]
      putField(u, g * words, 1, c, bits, perField ? (z - 1) & mask : z)
    }
  }
  if (format === 'gptq' && !perField) {
    const one = onePerField(bits)
    for (let i = 0; i < u.length; i++) u[i] = (u[i] - one) >>> 0
  }
  return packed
}

/** Inverse of packGptqZeros: zeros [groups, out] as the quantizer meant them (v2 convention). */
export function unpackGptqZeros(qzeros: Int32Array, groups: number, out: number, bits: number, format: GptqCheckpointFormat): Int32Array {
  const words = packedWords(out, bits)
  if (qzeros.length !== groups * words) {
    throw new WhittleError('format', null, `qzeros has ${qzeros.length} words, ${groups} groups × ${out} outputs at ${bits} bits need ${groups * words}`)
  }
  const mask = (1 << bits) - 1
  const perField = format === 'gptq' && 32 % bits !== 0
  let u = asWords(qzeros)
  if (format === 'gptq' && !perField) {
    const one = onePerField(bits)
    u = u.map((w) => (w + one) >>> 0)
  }
  const zeros = new Int32Array(groups * out)
  for (let g = 0; g < groups; g++) {
    for (let c = 0; c < out; c++) {
      const v = getField(u, g * words, 1, c, bits)
      zeros[g * out + c] = perField ? (v + 1) & mask : v
    }
  }
  return zeros
}

/** fp16 bits of values already fp16-representable (validateRecord checked). */
export function encodeF16(values: Float32Array): Uint16Array {
  const out = new Uint16Array(values.length)
  for (let i = 0; i < values.length; i++) out[i] = f32ToF16Bits(values[i])
  return out
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
  if (!GPTQ_BITS.includes(r.bits)) throw new WhittleError('unsupported', null, `${where}: GPTQ checkpoints hold 2, 3, 4 or 8 bits, not ${r.bits}`)
  const groups = r.scales.length / r.rows
  return {
    qweight: packGptqWeight(r.codes, r.rows, r.cols, r.bits),
    qzeros: packGptqZeros(r.zeros, groups, r.rows, r.bits, format),
    scales: encodeF16(r.scales),
    gIdx: r.gIdx.slice(),
    groups,
  }
}

/** W [out, in] decoded from GPTQ tensors: scales[g_idx[i], c] · (q − z). */
export function dequantizeGptq(t: { qweight: Int32Array; qzeros: Int32Array; scales: Uint16Array; gIdx: Int32Array }, out: number, inputs: number, bits: number, format: GptqCheckpointFormat): Float32Array {
  const groups = t.scales.length / out
  if (!Number.isInteger(groups) || groups < 1 || t.gIdx.length !== inputs) {
    throw new WhittleError('format', null, `GPTQ tensors disagree: ${t.scales.length} scales for ${out} outputs, ${t.gIdx.length} g_idx for ${inputs} inputs`)
  }
  const codes = unpackGptqWeight(t.qweight, out, inputs, bits)
  const zeros = unpackGptqZeros(t.qzeros, groups, out, bits, format)
  // Decoded once per group, not once per weight.
  const scales = Float32Array.from(t.scales, f16BitsToF32)
  const w = new Float32Array(out * inputs)
  for (let c = 0; c < out; c++) {
    for (let i = 0; i < inputs; i++) {
      const g = t.gIdx[i]
      if (g < 0 || g >= groups) throw new WhittleError('format', null, `g_idx[${i}] = ${g} is outside 0..${groups - 1}`)
      w[c * inputs + i] = Math.fround(scales[g * out + c] * (codes[c * inputs + i] - zeros[g * out + c]))
    }
  }
  return w
}

/**
 * compressed-tensors pack_to_int32 along dim 1: values [rows, count] (already offset to unsigned) →
 * int32 [rows, ceil(count·b/32)], element i of a row at bit i·b, LSB first, crossing words when needed.
 */
export function packRowsInt32(values: ArrayLike<number>, rows: number, count: number, bits: number): Int32Array {
  const words = packedWords(count, bits)
  const packed = new Int32Array(rows * words)
  const u = asWords(packed)
  for (let r = 0; r < rows; r++) for (let i = 0; i < count; i++) putField(u, r * words, 1, i, bits, values[r * count + i])
  return packed
}

export function unpackRowsInt32(packed: Int32Array, rows: number, count: number, bits: number): Uint8Array {
  const words = packedWords(count, bits)
  if (packed.length !== rows * words) throw new WhittleError('format', null, `packed tensor has ${packed.length} words, ${rows}×${count} at ${bits} bits need ${rows * words}`)
  const u = asWords(packed)
  const out = new Uint8Array(rows * count)
  for (let r = 0; r < rows; r++) for (let i = 0; i < count; i++) out[r * count + i] = getField(u, r * words, 1, i, bits)
  return out
}

/** compressed-tensors pack along dim 0: values [count, cols] → int32 [ceil(count·b/32), cols]. */
export function packColsInt32(values: ArrayLike<number>, count: number, cols: number, bits: number): Int32Array {
  const packed = new Int32Array(packedWords(count, bits) * cols)
  const u = asWords(packed)
  for (let c = 0; c < cols; c++) for (let i = 0; i < count; i++) putField(u, c, cols, i, bits, values[i * cols + c])
  return packed
}

export function unpackColsInt32(packed: Int32Array, count: number, cols: number, bits: number): Uint8Array {
  if (packed.length !== packedWords(count, bits) * cols) throw new WhittleError('format', null, `packed tensor has ${packed.length} words, ${count}×${cols} at ${bits} bits need ${packedWords(count, bits) * cols}`)
  const u = asWords(packed)
  const out = new Uint8Array(count * cols)
  for (let c = 0; c < cols; c++) for (let i = 0; i < count; i++) out[i * cols + c] = getField(u, c, cols, i, bits)
  return out
}
