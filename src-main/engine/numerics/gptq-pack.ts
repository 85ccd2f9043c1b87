// GPTQ's packed layout (qweight, qzeros, fp16 scales, g_idx) and its decoding.
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

import { WhittleError } from '../errors'
import { asWords, getField, packedWords, putField } from './bit-fields'
import { f16ToF32 } from './float-encodings'

export type GptqCheckpointFormat = 'gptq' | 'gptq_v2'

/** The code widths GPTQ checkpoints hold. */
export const GPTQ_BITS: readonly number[] = [2, 3, 4, 8]

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
    throw new WhittleError(
      'format',
      null,
      `qweight has ${qweight.length} words, ${inputs} inputs × ${out} outputs at ${bits} bits need ${packedWords(inputs, bits) * out}`,
    )
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
export function packGptqZeros(
  zeros: ArrayLike<number>,
  groups: number,
  out: number,
  bits: number,
  format: GptqCheckpointFormat,
): Int32Array {
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
export function unpackGptqZeros(
  qzeros: Int32Array,
  groups: number,
  out: number,
  bits: number,
  format: GptqCheckpointFormat,
): Int32Array {
  const words = packedWords(out, bits)
  if (qzeros.length !== groups * words) {
    throw new WhittleError(
      'format',
      null,
      `qzeros has ${qzeros.length} words, ${groups} groups × ${out} outputs at ${bits} bits need ${groups * words}`,
    )
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

/** W [out, in] decoded from GPTQ tensors: scales[g_idx[i], c] · (q − z). */
export function dequantizeGptq(
  t: { qweight: Int32Array; qzeros: Int32Array; scales: Uint16Array; gIdx: Int32Array },
  out: number,
  inputs: number,
  bits: number,
  format: GptqCheckpointFormat,
): Float32Array {
  const groups = t.scales.length / out
  if (!Number.isInteger(groups) || groups < 1 || t.gIdx.length !== inputs) {
    throw new WhittleError(
      'format',
      null,
      `GPTQ tensors disagree: ${t.scales.length} scales for ${out} outputs, ${t.gIdx.length} g_idx for ${inputs} inputs`,
    )
  }
  const codes = unpackGptqWeight(t.qweight, out, inputs, bits)
  const zeros = unpackGptqZeros(t.qzeros, groups, out, bits, format)
  // Decoded once per group, not once per weight.
  const scales = Float32Array.from(t.scales, f16ToF32)
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
