// Reading tensor data: raw byte ranges, and the TS reference decode of every dtype to f32.
// Big tensors are streamed by callers in chunks of whole rows (rowBytes/rowElements); readTensorF32 is for
// tensors small enough to hold whole.

import { WhittleError } from '../errors'
import { readRange } from '../io/ranged-file'
import { convertBF16, convertF16, convertF8E4M3, convertF8E5M2 } from '../../../kernels/reference/convert'
import { dequantizeBlocks, isBlockType } from '../../../kernels/reference/ggml-dequant-all'
import { bytesForElements, dtypeGeometry, elementCount, rowBytes, rowElements } from './dtype-info'
import type { DType, TensorEntry } from './types'

export { rowBytes, rowElements }

/** Whether decodeToF32 handles this dtype. */
export function canDecode(dtype: DType): boolean {
  return dtypeGeometry(dtype).blockElements === 1 || isBlockType(dtype)
}

/** Throws unless [byteStart, byteStart + byteLength) lies within the tensor's data. */
export function checkTensorRange(entry: TensorEntry, byteStart: number, byteLength: number): void {
  if (
    !Number.isSafeInteger(byteStart) ||
    !Number.isSafeInteger(byteLength) ||
    byteStart < 0 ||
    byteLength < 0 ||
    byteStart + byteLength > entry.byteLength
  ) {
    throw new WhittleError(
      'validation',
      entry.file,
      `tensor "${entry.name}": byte range ${byteStart}+${byteLength} lies outside its ${entry.byteLength} bytes`,
    )
  }
}

/**
 * Reads `byteLength` bytes starting `byteStart` bytes into the tensor's data, into `into` when given
 * (the returned array is then a view of `into`). Positional reads through the shared handle cache.
 */
export async function readTensorBytes(
  entry: TensorEntry,
  byteStart: number,
  byteLength: number,
  into?: Uint8Array,
): Promise<Uint8Array> {
  checkTensorRange(entry, byteStart, byteLength)
  const held = entry.data ?? (entry.unpack ? await unpackedBytes(entry) : null)
  if (held) {
    const part = held.subarray(byteStart, byteStart + byteLength)
    if (!into) return part.slice()
    into.set(part)
    return into.subarray(0, byteLength)
  }
  return readRange(entry.file, entry.offset + byteStart, byteLength, into)
}

/** The last unpacked tensor, kept because readers of one tensor often come back in chunks. */
let lastUnpacked: { entry: TensorEntry; bytes: Uint8Array } | null = null

async function unpackedBytes(entry: TensorEntry): Promise<Uint8Array> {
  if (lastUnpacked?.entry === entry) return lastUnpacked.bytes
  const values = await entry.unpack!()
  const bytes = new Uint8Array(values.buffer, values.byteOffset, values.byteLength)
  if (bytes.byteLength !== entry.byteLength) {
    throw new WhittleError(
      'format',
      entry.file,
      `tensor "${entry.name}" unpacked to ${bytes.byteLength} bytes, ${entry.byteLength} expected`,
    )
  }
  lastUnpacked = { entry, bytes }
  return bytes
}

/**
 * A typed view of the first `count` items of `bytes`; copies when `bytes` is not aligned for the type
 * (a typed-array view at an unaligned offset throws).
 */
function aligned<T>(
  bytes: Uint8Array,
  count: number,
  size: number,
  make: (buf: ArrayBufferLike, offset: number, length: number) => T,
): T {
  if (bytes.byteOffset % size === 0) return make(bytes.buffer, bytes.byteOffset, count)
  const copy = new Uint8Array(count * size)
  copy.set(bytes.subarray(0, count * size))
  return make(copy.buffer, 0, count)
}

/** 64-bit integers: exact up to 2^53, then rounded (once to f64, once to f32). */
function decodeInt64(bytes: Uint8Array, n: number, dst: Float32Array, signed: boolean): void {
  const words = aligned(bytes, n * 2, 4, (b, o, l) => new Uint32Array(b, o, l))
  const hiWords = signed ? aligned(bytes, n * 2, 4, (b, o, l) => new Int32Array(b, o, l)) : words
  for (let i = 0; i < n; i++) dst[i] = words[2 * i] + hiWords[2 * i + 1] * 4294967296
}

/**
 * Decodes `n` elements of `dtype` from `bytes` into `out[0..n)`. This is the TS reference path for every
 * dtype the engine reads; for block types `n` must be a whole number of blocks. Ints and BOOL are converted
 * numerically (true = 1). Little-endian host assumed, as on every platform Node supports.
 */
export function decodeToF32(dtype: DType, bytes: Uint8Array, n: number, out: Float32Array): void {
  const g = dtypeGeometry(dtype)
  if (!Number.isSafeInteger(n) || n < 0 || n % g.blockElements !== 0) {
    throw new WhittleError(
      'validation',
      null,
      `cannot decode ${n} elements of ${dtype}: not a whole number of ${g.blockElements}-element blocks`,
    )
  }
  const need = bytesForElements(dtype, n)
  if (bytes.length < need)
    throw new WhittleError(
      'validation',
      null,
      `decoding ${n} ${dtype} elements needs ${need} bytes, got ${bytes.length}`,
    )
  if (out.length < n)
    throw new WhittleError('validation', null, `decoding ${n} elements into a buffer of ${out.length}`)
  const dst = out.subarray(0, n)
  switch (dtype) {
    case 'F32':
      // Byte copy into the output: correct whatever the source alignment.
      new Uint8Array(dst.buffer, dst.byteOffset, n * 4).set(bytes.subarray(0, n * 4))
      return
    case 'F64':
      dst.set(aligned(bytes, n, 8, (b, o, l) => new Float64Array(b, o, l)))
      return
    case 'F16':
      convertF16(
        aligned(bytes, n, 2, (b, o, l) => new Uint16Array(b, o, l)),
        dst,
      )
      return
    case 'BF16':
      convertBF16(
        aligned(bytes, n, 2, (b, o, l) => new Uint16Array(b, o, l)),
        dst,
      )
      return
    case 'F8_E4M3':
      convertF8E4M3(bytes.subarray(0, n), dst)
      return
    case 'F8_E5M2':
      convertF8E5M2(bytes.subarray(0, n), dst)
      return
    case 'U8':
      dst.set(bytes.subarray(0, n))
      return
    case 'I8':
      dst.set(new Int8Array(bytes.buffer, bytes.byteOffset, n))
      return
    case 'U16':
      dst.set(aligned(bytes, n, 2, (b, o, l) => new Uint16Array(b, o, l)))
      return
    case 'I16':
      dst.set(aligned(bytes, n, 2, (b, o, l) => new Int16Array(b, o, l)))
      return
    case 'U32':
      dst.set(aligned(bytes, n, 4, (b, o, l) => new Uint32Array(b, o, l)))
      return
    case 'I32':
      dst.set(aligned(bytes, n, 4, (b, o, l) => new Int32Array(b, o, l)))
      return
    case 'U64':
      decodeInt64(bytes, n, dst, false)
      return
    case 'I64':
      decodeInt64(bytes, n, dst, true)
      return
    case 'BOOL':
      for (let i = 0; i < n; i++) dst[i] = bytes[i] !== 0 ? 1 : 0
      return
    default:
      if (isBlockType(dtype)) {
        dequantizeBlocks(dtype, bytes.subarray(0, need), n, dst)
        return
      }
      throw new WhittleError('unsupported', null, `decoding ${dtype} is not supported yet`)
  }
}

/** Largest tensor readTensorF32 reads whole by default (1 GiB of f32). */
export const DEFAULT_MAX_ELEMENTS = 1 << 28

/** Reads and decodes a whole tensor. Errors when it has more than `maxElements` elements: stream those instead. */
export async function readTensorF32(entry: TensorEntry, maxElements = DEFAULT_MAX_ELEMENTS): Promise<Float32Array> {
  const numel = elementCount(entry.shape)
  if (numel > maxElements) {
    throw new WhittleError(
      'validation',
      entry.file,
      `tensor "${entry.name}" has ${numel} elements, more than the ${maxElements} read whole; stream it in rows instead`,
    )
  }
  if (!canDecode(entry.dtype))
    throw new WhittleError(
      'unsupported',
      entry.file,
      `tensor "${entry.name}": decoding ${entry.dtype} is not supported yet`,
    )
  const out = new Float32Array(numel)
  if (entry.dtype === 'F32') {
    await readTensorBytes(entry, 0, entry.byteLength, new Uint8Array(out.buffer))
    return out
  }
  const bytes = await readTensorBytes(entry, 0, entry.byteLength)
  decodeToF32(entry.dtype, bytes, numel, out)
  return out
}
