// Bit streams of small unsigned integers packed LSB first into int32 words: the layout GPTQ and
// compressed-tensors both build on. Value i of a stream occupies bits [i·b, (i+1)·b) of the stream; a value
// wider than what is left of a word continues in the next one (3-bit codes straddle words).
// A stream's word k lives at words[base + k·stride], which lets one stream run along either dimension of
// a row-major int32 matrix.

import { WhittleError } from '../errors'

/** int32 words needed for `count` values of `bits` bits. */
export function packedWords(count: number, bits: number): number {
  return Math.ceil((count * bits) / 32)
}

/**
 * Writes value number `index` of a bit stream (LSB first) into `words`, where stream word k lives at
 * words[base + k·stride]. Values wider than what is left of a word continue in the next one.
 */
export function putField(
  words: Uint32Array,
  base: number,
  stride: number,
  index: number,
  bits: number,
  value: number,
): void {
  const bit = index * bits
  const word = bit >>> 5
  const shift = bit & 31
  words[base + word * stride] |= value << shift
  if (shift + bits > 32) words[base + (word + 1) * stride] |= value >>> (32 - shift)
}

export function getField(words: Uint32Array, base: number, stride: number, index: number, bits: number): number {
  const bit = index * bits
  const word = bit >>> 5
  const shift = bit & 31
  let v = words[base + word * stride] >>> shift
  if (shift + bits > 32) v |= words[base + (word + 1) * stride] << (32 - shift)
  return v & ((1 << bits) - 1)
}

export function asWords(a: Int32Array): Uint32Array {
  return new Uint32Array(a.buffer, a.byteOffset, a.length)
}

/**
 * Packs along dim 1 (compressed-tensors pack_to_int32): values [rows, count] (already offset to unsigned) →
 * int32 [rows, ceil(count·b/32)], element i of a row at bit i·b, LSB first, crossing words when needed.
 */
export function packRowsInt32(values: ArrayLike<number>, rows: number, count: number, bits: number): Int32Array {
  const words = packedWords(count, bits)
  const packed = new Int32Array(rows * words)
  const u = asWords(packed)
  for (let r = 0; r < rows; r++)
    for (let i = 0; i < count; i++) putField(u, r * words, 1, i, bits, values[r * count + i])
  return packed
}

export function unpackRowsInt32(packed: Int32Array, rows: number, count: number, bits: number): Uint8Array {
  const words = packedWords(count, bits)
  if (packed.length !== rows * words)
    throw new WhittleError(
      'format',
      null,
      `packed tensor has ${packed.length} words, ${rows}×${count} at ${bits} bits need ${rows * words}`,
    )
  const u = asWords(packed)
  const out = new Uint8Array(rows * count)
  for (let r = 0; r < rows; r++) for (let i = 0; i < count; i++) out[r * count + i] = getField(u, r * words, 1, i, bits)
  return out
}

/** Packs along dim 0 (compressed-tensors, zero points): values [count, cols] → int32 [ceil(count·b/32), cols]. */
export function packColsInt32(values: ArrayLike<number>, count: number, cols: number, bits: number): Int32Array {
  const packed = new Int32Array(packedWords(count, bits) * cols)
  const u = asWords(packed)
  for (let c = 0; c < cols; c++) for (let i = 0; i < count; i++) putField(u, c, cols, i, bits, values[i * cols + c])
  return packed
}

export function unpackColsInt32(packed: Int32Array, count: number, cols: number, bits: number): Uint8Array {
  if (packed.length !== packedWords(count, bits) * cols)
    throw new WhittleError(
      'format',
      null,
      `packed tensor has ${packed.length} words, ${count}×${cols} at ${bits} bits need ${packedWords(count, bits) * cols}`,
    )
  const u = asWords(packed)
  const out = new Uint8Array(count * cols)
  for (let c = 0; c < cols; c++) for (let i = 0; i < count; i++) out[i * cols + c] = getField(u, c, cols, i, bits)
  return out
}
