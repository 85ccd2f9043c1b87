// GGUF writer (v3 by default; v2 shares the layout). The header (KVs + tensor infos) is assembled in
// memory, then tensor data is written in order, each tensor padded to the alignment, as llama.cpp expects.

import { WhittleError } from '../errors'
import { ByteBuilder } from '../io/byte-builder'
import { writeFileAtomically, type AtomicWriteOptions } from '../io/atomic-writer'
import { DEFAULT_ALIGNMENT, GGUF_MAGIC, MAX_DIMS } from './gguf'
import { GGUF_VALUE_TYPES, type GgufValueType } from './gguf-metadata'
import { ggmlTypeById, ggmlTypeByName, type GgmlTypeInfo } from './ggml-types'
import { safeMultiply, safeProduct } from './dtype-info'

export type GgufScalarType = Exclude<GgufValueType, 'array'>
export type GgufScalarValue = number | bigint | boolean | string

/** An array value: scalar items, or (itemType 'array') nested arrays. */
export type GgufWriteArray =
  { itemType: GgufScalarType; value: ArrayLike<GgufScalarValue> } | { itemType: 'array'; value: GgufWriteArray[] }

export type GgufKv =
  { key: string; type: GgufScalarType; value: GgufScalarValue } | ({ key: string; type: 'array' } & GgufWriteArray)

export interface GgufTensorInput {
  name: string
  /** ggml type name ('F32', 'Q8_0', ...) or id. */
  type: string | number
  /** ggml order: innermost (contiguous) dimension first, so a PyTorch [out, in] weight is [in, out]. */
  dims: number[]
  /** The bytes, or a producer called when the writer reaches the tensor (so a whole model need not be held). */
  data: Uint8Array | GgufLazyData
}

/**
 * Tensor data produced on demand; `byteLength` must be known for the header, before any data is written.
 * `produce` may return the bytes in chunks, in order: each chunk is written before the next is asked for,
 * so a producer may reuse a chunk's buffer once it hands out the next one.
 */
export interface GgufLazyData {
  byteLength: number
  produce(): Promise<Uint8Array | AsyncIterable<Uint8Array>>
}

function isLazy(d: GgufTensorInput['data']): d is GgufLazyData {
  return !ArrayBuffer.isView(d)
}

function dataLength(t: GgufTensorInput): number {
  return t.data.byteLength
}

export interface GgufWriteSpec {
  version?: 2 | 3
  alignment?: number
  kv: GgufKv[]
  tensors: GgufTensorInput[]
}

const INT_RANGES: Partial<Record<GgufScalarType, [number, number]>> = {
  u8: [0, 0xff],
  i8: [-0x80, 0x7f],
  u16: [0, 0xffff],
  i16: [-0x8000, 0x7fff],
  u32: [0, 0xffffffff],
  i32: [-0x80000000, 0x7fffffff],
}

function writeScalar(b: ByteBuilder, type: GgufScalarType, v: GgufScalarValue, what: string): void {
  const bad = (): WhittleError => new WhittleError('validation', null, `${what}: ${String(v)} is not a valid ${type}`)
  const range = INT_RANGES[type]
  if (range) {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < range[0] || v > range[1]) throw bad()
  }
  switch (type) {
    case 'u8':
      b.u8(v as number)
      return
    case 'i8':
      b.i8(v as number)
      return
    case 'u16':
      b.u16(v as number)
      return
    case 'i16':
      b.i16(v as number)
      return
    case 'u32':
      b.u32(v as number)
      return
    case 'i32':
      b.i32(v as number)
      return
    case 'f32':
    case 'f64':
      if (typeof v !== 'number') throw bad()
      if (type === 'f32') b.f32(v)
      else b.f64(v)
      return
    case 'u64':
    case 'i64': {
      if (typeof v !== 'bigint' && !(typeof v === 'number' && Number.isSafeInteger(v))) throw bad()
      const big = BigInt(v)
      const ok = type === 'u64' ? big >= 0n && big < 1n << 64n : big >= -(1n << 63n) && big < 1n << 63n
      if (!ok) throw bad()
      if (type === 'u64') b.u64(big)
      else b.i64(big)
      return
    }
    case 'bool':
      if (typeof v !== 'boolean') throw bad()
      b.u8(v ? 1 : 0)
      return
    case 'string': {
      if (typeof v !== 'string') throw bad()
      const bytes = new TextEncoder().encode(v)
      b.u64(bytes.length).bytes(bytes)
      return
    }
  }
}

function writeArray(b: ByteBuilder, a: GgufWriteArray, what: string): void {
  b.u32(GGUF_VALUE_TYPES.indexOf(a.itemType)).u64(a.value.length)
  if (a.itemType === 'array') {
    for (const [i, inner] of (a.value as GgufWriteArray[]).entries()) writeArray(b, inner, `${what}[${i}]`)
    return
  }
  for (let i = 0; i < a.value.length; i++) writeScalar(b, a.itemType, a.value[i], `${what}[${i}]`)
}

function ggufString(b: ByteBuilder, s: string): void {
  const bytes = new TextEncoder().encode(s)
  b.u64(bytes.length).bytes(bytes)
}

function resolveType(path: string, t: GgufTensorInput): GgmlTypeInfo {
  const info = typeof t.type === 'number' ? ggmlTypeById(t.type) : ggmlTypeByName(t.type)
  if (!info) throw new WhittleError('validation', path, `tensor "${t.name}": unknown ggml type ${t.type}`)
  return info
}

function tensorBytes(path: string, t: GgufTensorInput, type: GgmlTypeInfo): number {
  if (t.dims.length < 1 || t.dims.length > MAX_DIMS)
    throw new WhittleError('validation', path, `tensor "${t.name}": ${t.dims.length} dims (1 to ${MAX_DIMS} allowed)`)
  const numel = safeProduct(t.dims)
  if (numel === null)
    throw new WhittleError('validation', path, `tensor "${t.name}": invalid dims ${JSON.stringify(t.dims)}`)
  if (t.dims[0] % type.blockElements !== 0) {
    throw new WhittleError(
      'validation',
      path,
      `tensor "${t.name}": dims[0] = ${t.dims[0]} is not a multiple of the ${type.name} block size ${type.blockElements}`,
    )
  }
  const bytes = safeMultiply(numel / type.blockElements, type.blockBytes)
  if (bytes === null || bytes !== dataLength(t)) {
    throw new WhittleError(
      'validation',
      path,
      `tensor "${t.name}": ${dataLength(t)} data bytes, but dims ${JSON.stringify(t.dims)} of ${type.name} need ${bytes}`,
    )
  }
  return bytes
}

/** Encodes everything before the data section, padding included. */
export function encodeGgufHeader(
  path: string,
  spec: GgufWriteSpec,
): { header: Uint8Array; offsets: number[]; alignment: number } {
  const version = spec.version ?? 3
  if (version !== 2 && version !== 3) throw new WhittleError('validation', path, `cannot write GGUF version ${version}`)
  const kv = [...spec.kv]
  const declared = kv.find((k) => k.key === 'general.alignment')
  const alignment =
    spec.alignment ?? (declared && typeof declared.value === 'number' ? declared.value : DEFAULT_ALIGNMENT)
  if (!Number.isInteger(alignment) || alignment <= 0 || (alignment & (alignment - 1)) !== 0) {
    throw new WhittleError('validation', path, `alignment ${alignment} is not a power of two`)
  }
  if (declared && declared.value !== alignment)
    throw new WhittleError('validation', path, 'general.alignment disagrees with the alignment option')
  if (!declared && alignment !== DEFAULT_ALIGNMENT) kv.push({ key: 'general.alignment', type: 'u32', value: alignment })
  const keys = new Set<string>()
  for (const k of kv) {
    if (keys.has(k.key)) throw new WhittleError('validation', path, `metadata key "${k.key}" is repeated`)
    keys.add(k.key)
  }

  const b = new ByteBuilder()
  b.text(GGUF_MAGIC).u32(version).u64(spec.tensors.length).u64(kv.length)
  for (const k of kv) {
    ggufString(b, k.key)
    b.u32(GGUF_VALUE_TYPES.indexOf(k.type))
    if (k.type === 'array') writeArray(b, k, k.key)
    else writeScalar(b, k.type, k.value, k.key)
  }
  const offsets: number[] = []
  const names = new Set<string>()
  let offset = 0
  for (const t of spec.tensors) {
    if (names.has(t.name)) throw new WhittleError('validation', path, `tensor name "${t.name}" is repeated`)
    names.add(t.name)
    const type = resolveType(path, t)
    const bytes = tensorBytes(path, t, type)
    ggufString(b, t.name)
    b.u32(t.dims.length)
    for (const d of t.dims) b.u64(d)
    b.u32(type.id).u64(offset)
    offsets.push(offset)
    offset = Math.ceil((offset + bytes) / alignment) * alignment
  }
  b.pad(alignment)
  return { header: b.finish(), offsets, alignment }
}

/**
 * Writes a GGUF file atomically (temp file, flushed, optionally verified, then named). Returns its size
 * in bytes. `options.exclusive` never replaces an existing file (exports); see writeFileAtomically.
 */
export async function writeGguf(path: string, spec: GgufWriteSpec, options?: AtomicWriteOptions): Promise<number> {
  const { header, alignment } = encodeGgufHeader(path, spec)
  return writeFileAtomically(
    path,
    async (w) => {
      await w.write(header)
      for (const t of spec.tensors) {
        const data = isLazy(t.data) ? await t.data.produce() : t.data
        let produced = 0
        for await (const chunk of ArrayBuffer.isView(data) ? [data] : data) {
          produced += chunk.byteLength
          if (produced > dataLength(t)) break
          await w.write(chunk)
        }
        if (produced !== dataLength(t)) {
          throw new WhittleError(
            'validation',
            path,
            `tensor "${t.name}": produced ${produced > dataLength(t) ? 'more than' : produced} bytes, ${dataLength(t)} were announced`,
          )
        }
        // Every tensor, the last included, is padded to the alignment, as llama.cpp and gguf-py write them.
        const pad = (alignment - (produced % alignment)) % alignment
        if (pad > 0) await w.write(new Uint8Array(pad))
      }
    },
    options,
  )
}
