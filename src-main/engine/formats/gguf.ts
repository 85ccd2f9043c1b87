// GGUF reader (v2 and v3; both share one little-endian layout, v1 used 32-bit counts and is refused).
// Layout: "GGUF", u32 version, i64 tensor count, i64 KV count, the KVs, the tensor infos
// (name, u32 n_dims, i64 dims innermost-first, u32 ggml type, u64 offset), padding to general.alignment,
// then the data. The header is walked with a buffered cursor, so a metadata block with a 150k-entry
// vocabulary is never read in one piece, and long arrays are skipped and only located (readGgufArray
// reads them back on demand).

import { resolve } from 'node:path'
import { WhittleError, formatError } from '../errors'
import { FileCursor } from '../io/byte-cursor'
import { closeFile, handleSize, withFileHandle } from '../io/ranged-file'
import { safeMultiply, safeProduct } from './dtype-info'
import { ggmlTypeById } from './ggml-types'
import {
  MAX_KEY_BYTES,
  readArrayItems,
  readMetadataValue,
  readString,
  readValueType,
  type GgufArrayLocation,
  type GgufArrayValue,
  type GgufMetadataValue,
  type GgufValueType,
  type ValueBudget,
} from './gguf-metadata'
import {
  GGUF_TOKENIZER_PREFIX,
  INLINE_PARSE_BYTES,
  MAX_GGUF_KVS,
  MAX_GGUF_METADATA_BYTES,
  MAX_GGUF_TOKENIZER_BYTES,
  MAX_GGUF_TOKENIZER_ITEMS,
  MAX_TENSORS,
} from './limits'
import { runParseJob } from './parse-worker-host'
import type { TensorEntry } from './types'

export { MAX_GGUF_KVS }

export const GGUF_MAGIC = 'GGUF'
export const DEFAULT_ALIGNMENT = 32
export const MAX_DIMS = 4
/** See limits.ts: far above any real model (the largest MoE GGUFs hold a few thousand tensors per file). */
export const MAX_GGUF_TENSORS = MAX_TENSORS
/** Smallest tensor info: empty name (8) + n_dims (4) + type (4) + offset (8); dims add 8 each. */
const MIN_TENSOR_INFO_BYTES = 8 + 4 + 4 + 8
/** Smallest KV: empty key (8) + type (4) + a one-byte value. */
const MIN_KV_BYTES = 8 + 4 + 1

export interface GgufTensorInfo {
  name: string
  /** ggml order, innermost first. */
  dims: number[]
  ggmlType: number
  /** Offset relative to the data section. */
  relativeOffset: number
}

export interface GgufFile {
  path: string
  size: number
  version: number
  alignment: number
  /** Absolute offset of the data section. */
  dataStart: number
  /** All KVs; arrays longer than INLINE_ARRAY_LIMIT are summarised as { type: 'array', itemType, length }. */
  metadata: Record<string, GgufMetadataValue>
  /** Value type of every KV, so a writer can reproduce them. */
  kvTypes: Record<string, GgufValueType>
  /** In the order of the tensor infos; shapes in PyTorch order (dims reversed). */
  tensors: TensorEntry[]
  infos: GgufTensorInfo[]
  /** Where each array-valued KV's items begin (short and long ones). */
  arrays: Record<string, GgufArrayLocation>
  warnings: string[]
}

function versionProblem(version: number): string | null {
  if (version === 2 || version === 3) return null
  if (version === 1) return 'GGUF v1 is not supported (v2 and v3 are)'
  // A big-endian file carries its version byte-swapped, e.g. 0x03000000.
  const swapped =
    (((version & 0xff) << 24) | ((version & 0xff00) << 8) | ((version >>> 8) & 0xff00) | (version >>> 24)) >>> 0
  if (swapped >= 1 && swapped <= 3) return 'big-endian GGUF is not supported'
  return `GGUF version ${version} is not supported (v2 and v3 are)`
}

async function readSignedCount(c: FileCursor, what: string, perItem: number, max: number): Promise<number> {
  await c.ensure(8, what)
  const v = c.i64()
  if (v < 0n) throw formatError(c.path, `${what} is negative (${v})`)
  const room = Math.floor(c.remaining() / perItem)
  if (v > BigInt(room)) {
    throw new WhittleError('truncated', c.path, `header claims ${v} ${what}, but the file has room for at most ${room}`)
  }
  const n = Number(v)
  if (n > max) throw formatError(c.path, `header claims ${n} ${what}; more than ${max} is not plausible`)
  return n
}

/** Plain assignment would treat a key named "__proto__" specially; keys from a file must stay plain data. */
function setOwn<T>(record: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(record, key, { value, enumerable: true, writable: true, configurable: true })
}

function alignmentFrom(path: string, value: GgufMetadataValue | undefined, type: GgufValueType | undefined): number {
  if (value === undefined) return DEFAULT_ALIGNMENT
  // The spec stores it as u32; any integer type is accepted, but its value must be a sane power of two.
  const integer = type !== undefined && ['u8', 'i8', 'u16', 'i16', 'u32', 'i32', 'u64', 'i64'].includes(type)
  if (!integer) throw formatError(path, `general.alignment must be an integer, got a ${type}`)
  if (typeof value !== 'number' || value <= 0 || value > 2 ** 30 || (value & (value - 1)) !== 0) {
    throw formatError(path, `general.alignment ${String(value)} is not a power of two between 1 and 2^30`)
  }
  return value
}

async function readTensorInfo(c: FileCursor, index: number): Promise<GgufTensorInfo> {
  const what = `tensor info ${index}`
  const name = await readString(c, `${what} name`, MAX_KEY_BYTES, true)
  await c.ensure(4, what)
  const nDims = c.u32()
  if (nDims < 1 || nDims > MAX_DIMS)
    throw formatError(c.path, `tensor "${name}" has ${nDims} dimensions (1 to ${MAX_DIMS} allowed)`)
  await c.ensure(8 * nDims + 4 + 8, `tensor "${name}" info`)
  const dims: number[] = []
  for (let d = 0; d < nDims; d++) {
    const v = c.i64()
    if (v < 0n || v > BigInt(Number.MAX_SAFE_INTEGER))
      throw formatError(c.path, `tensor "${name}" has invalid dimension ${v}`)
    dims.push(Number(v))
  }
  const ggmlType = c.u32()
  const offset = c.u64()
  if (offset > BigInt(Number.MAX_SAFE_INTEGER))
    throw formatError(c.path, `tensor "${name}" has offset ${offset}, beyond any file size`)
  return { name, dims, ggmlType, relativeOffset: Number(offset) }
}

function tensorEntry(path: string, info: GgufTensorInfo, dataStart: number): TensorEntry {
  const { name, dims } = info
  const type = ggmlTypeById(info.ggmlType)
  if (!type) throw new WhittleError('unsupported', path, `tensor "${name}" has unknown ggml type id ${info.ggmlType}`)
  if (!type.dtype)
    throw new WhittleError(
      'unsupported',
      path,
      `tensor "${name}" has ggml type ${type.name}, which Whittle does not support`,
    )
  if (dims[0] % type.blockElements !== 0) {
    throw formatError(
      path,
      `tensor "${name}": row length ${dims[0]} is not a multiple of the ${type.name} block size ${type.blockElements}`,
    )
  }
  const rows = safeProduct(dims.slice(1))
  const perRow = (dims[0] / type.blockElements) * type.blockBytes
  const byteLength = rows === null ? null : safeMultiply(rows, perRow)
  if (byteLength === null || safeProduct(dims) === null)
    throw formatError(path, `tensor "${name}": dimensions [${dims.join(', ')}] are too large to address`)
  return {
    name,
    dtype: type.dtype,
    shape: [...dims].reverse(),
    file: path,
    offset: dataStart + info.relativeOffset,
    byteLength,
  }
}

/** What the KVs still may take: tokenizer.* ones share a generous budget, all others a small one. */
interface MetadataBudgets {
  tokenizer: ValueBudget
  other: ValueBudget
}

function metadataBudgets(): MetadataBudgets {
  return {
    tokenizer: {
      bytes: MAX_GGUF_TOKENIZER_BYTES,
      items: MAX_GGUF_TOKENIZER_ITEMS,
      cap: `the ${MAX_GGUF_TOKENIZER_BYTES}-byte / ${MAX_GGUF_TOKENIZER_ITEMS}-item cap on tokenizer.* metadata`,
    },
    other: {
      bytes: MAX_GGUF_METADATA_BYTES,
      items: MAX_GGUF_METADATA_BYTES,
      cap: `the ${MAX_GGUF_METADATA_BYTES}-byte cap on metadata outside tokenizer.*`,
    },
  }
}

/**
 * Opens a GGUF file: validates the header, metadata and tensor infos. Data is not read. Files over
 * INLINE_PARSE_BYTES are walked in the parser worker, so a large header never stalls the event loop.
 */
export async function readGguf(path: string): Promise<GgufFile> {
  const abs = resolve(path)
  closeFile(abs)
  const size = await withFileHandle(abs, (handle) => handleSize(handle, abs))
  closeFile(abs)
  if (size <= INLINE_PARSE_BYTES) return readGgufHeader(abs)
  return ggufFromColumns(
    await runParseJob<GgufColumns>({ kind: 'gguf', path: abs }, abs, async () =>
      ggufToColumns(await readGgufHeader(abs)),
    ),
  )
}

/**
 * A GgufFile with its tensor infos in columns, as the parser worker sends it back: structured-cloning
 * 10^5 tensor objects costs the receiving thread a second on a loaded machine, a few typed arrays nothing.
 */
export interface GgufColumns {
  header: Omit<GgufFile, 'tensors' | 'infos'>
  names: string
  nameLengths: Uint32Array
  ranks: Uint8Array
  dims: Float64Array
  types: Uint32Array
  offsets: Float64Array
}

export function ggufToColumns(g: GgufFile): GgufColumns {
  const { tensors: _tensors, infos, ...header } = g
  const n = infos.length
  const nameLengths = new Uint32Array(n),
    ranks = new Uint8Array(n),
    types = new Uint32Array(n),
    offsets = new Float64Array(n)
  const dims: number[] = []
  infos.forEach((info, i) => {
    nameLengths[i] = info.name.length
    ranks[i] = info.dims.length // at most MAX_DIMS
    for (const d of info.dims) dims.push(d)
    types[i] = info.ggmlType
    offsets[i] = info.relativeOffset
  })
  return {
    header,
    names: infos.map((i) => i.name).join(''),
    nameLengths,
    ranks,
    dims: Float64Array.from(dims),
    types,
    offsets,
  }
}

export function ggufColumnBuffers(c: GgufColumns): ArrayBuffer[] {
  return [c.nameLengths, c.ranks, c.dims, c.types, c.offsets].map((a) => a.buffer as ArrayBuffer)
}

/** Infos rebuilt per slice, with the event loop let through between slices. */
const INFOS_PER_SLICE = 8192

/** The GgufFile of `c`, its infos and tensor entries rebuilt in slices (their checks already passed in the worker). */
export async function ggufFromColumns(c: GgufColumns): Promise<GgufFile> {
  const infos: GgufTensorInfo[] = []
  const tensors: TensorEntry[] = []
  let at = 0,
    d = 0
  for (let i = 0; i < c.nameLengths.length; i++) {
    if (i > 0 && i % INFOS_PER_SLICE === 0) await new Promise((r) => setImmediate(r))
    const name = c.names.slice(at, at + c.nameLengths[i])
    at += c.nameLengths[i]
    const dims: number[] = []
    for (const end = d + c.ranks[i]; d < end; d++) dims.push(c.dims[d])
    const info: GgufTensorInfo = { name, dims, ggmlType: c.types[i], relativeOffset: c.offsets[i] }
    infos.push(info)
    tensors.push(tensorEntry(c.header.path, info, c.header.dataStart))
  }
  return { ...c.header, tensors, infos }
}

/** The header walk itself, on the calling thread (the parser worker calls this). */
export async function readGgufHeader(path: string): Promise<GgufFile> {
  const abs = resolve(path)
  closeFile(abs)
  return withFileHandle(abs, async (handle) => {
    const size = await handleSize(handle, abs)
    const c = new FileCursor(handle, abs, size)
    await c.ensure(4, 'magic')
    const magic = String.fromCharCode(...c.take(4))
    if (magic !== GGUF_MAGIC) throw formatError(abs, 'not a GGUF file (bad magic)')
    await c.ensure(4, 'version')
    const version = c.u32()
    const problem = versionProblem(version)
    if (problem) throw new WhittleError('unsupported', abs, problem)
    const tensorCount = await readSignedCount(c, 'tensors', MIN_TENSOR_INFO_BYTES, MAX_GGUF_TENSORS)
    const kvCount = await readSignedCount(c, 'metadata KVs', MIN_KV_BYTES, MAX_GGUF_KVS)
    const budgets = metadataBudgets()

    const metadata: Record<string, GgufMetadataValue> = {}
    const kvTypes: Record<string, GgufValueType> = {}
    const arrays: Record<string, GgufArrayLocation> = {}
    for (let i = 0; i < kvCount; i++) {
      const start = c.position
      const key = await readString(c, `metadata key ${i}`, MAX_KEY_BYTES, true)
      if (Object.hasOwn(kvTypes, key)) throw formatError(abs, `metadata key "${key}" appears twice`)
      const budget = key.startsWith(GGUF_TOKENIZER_PREFIX) ? budgets.tokenizer : budgets.other
      const type = await readValueType(c, `metadata "${key}"`)
      setOwn(kvTypes, key, type)
      setOwn(
        metadata,
        key,
        await readMetadataValue(c, type, `metadata "${key}"`, (loc) => setOwn(arrays, key, loc), 0, budget),
      )
      budget.bytes -= c.position - start
      if (budget.bytes < 0) throw formatError(abs, `metadata "${key}" takes the KVs past ${budget.cap}`)
    }
    const hasAlignment = Object.hasOwn(kvTypes, 'general.alignment')
    const alignment = alignmentFrom(
      abs,
      hasAlignment ? metadata['general.alignment'] : undefined,
      hasAlignment ? kvTypes['general.alignment'] : undefined,
    )

    // Re-check against what is left now that the KVs are consumed.
    const room = Math.floor(c.remaining() / MIN_TENSOR_INFO_BYTES)
    if (tensorCount > room)
      throw new WhittleError(
        'truncated',
        abs,
        `header claims ${tensorCount} tensors, but only ${c.remaining()} bytes remain for their infos`,
      )
    const infos: GgufTensorInfo[] = []
    const names = new Set<string>()
    for (let i = 0; i < tensorCount; i++) {
      const info = await readTensorInfo(c, i)
      if (names.has(info.name)) throw formatError(abs, `tensor "${info.name}" appears twice`)
      names.add(info.name)
      infos.push(info)
    }
    const dataStart = Math.ceil(c.position / alignment) * alignment
    const tensors = infos.map((info) => tensorEntry(abs, info, dataStart))

    for (const [i, t] of tensors.entries()) {
      const rel = infos[i].relativeOffset
      if (rel % alignment !== 0)
        throw formatError(abs, `tensor "${t.name}" offset ${rel} is not a multiple of the alignment ${alignment}`)
      if (t.offset + t.byteLength > size) {
        throw new WhittleError(
          'truncated',
          abs,
          `tensor "${t.name}" needs bytes ${t.offset}..${t.offset + t.byteLength}, but the file is ${size} bytes (truncated, or offset out of range)`,
        )
      }
    }
    const byOffset = [...tensors].filter((t) => t.byteLength > 0).sort((a, b) => a.offset - b.offset)
    for (let i = 1; i < byOffset.length; i++) {
      const prev = byOffset[i - 1]
      if (byOffset[i].offset < prev.offset + prev.byteLength) {
        throw formatError(abs, `tensors "${prev.name}" and "${byOffset[i].name}" overlap in the data section`)
      }
    }
    return { path: abs, size, version, alignment, dataStart, metadata, kvTypes, tensors, infos, arrays, warnings: [] }
  })
}

/**
 * Reads one metadata array in full (e.g. tokenizer.ggml.tokens), whether or not it was summarised.
 * Numbers come back as typed arrays, strings and bools as plain arrays. Pass the GgufFile from an earlier
 * readGguf to skip re-reading the header.
 */
export async function readGgufArray(path: string, key: string, file?: GgufFile): Promise<GgufArrayValue> {
  const abs = resolve(path)
  const header = file && file.path === abs ? file : await readGguf(abs)
  const type = Object.hasOwn(header.kvTypes, key) ? header.kvTypes[key] : undefined
  if (type === undefined) throw new WhittleError('not-found', abs, `no metadata key "${key}"`)
  const loc = Object.hasOwn(header.arrays, key) ? header.arrays[key] : undefined
  if (type !== 'array' || !loc)
    throw new WhittleError('validation', abs, `metadata "${key}" is a ${type}, not an array`)
  return withFileHandle(abs, async (handle) => {
    const size = await handleSize(handle, abs)
    if (size !== header.size) throw new WhittleError('io', abs, 'file changed since it was opened')
    const c = new FileCursor(handle, abs, size, loc.offset)
    return readArrayItems(c, loc.itemType, loc.length, `metadata "${key}"`)
  })
}

export interface GgufModel {
  files: string[]
  tensors: TensorEntry[]
  metadata: Record<string, unknown>
  warnings: string[]
  sizeOnDisk: number
  gguf: GgufFile
}

export async function openGgufFile(path: string): Promise<GgufModel> {
  const g = await readGguf(path)
  return {
    files: [g.path],
    tensors: g.tensors,
    metadata: g.metadata,
    warnings: g.warnings,
    sizeOnDisk: g.size,
    gguf: g,
  }
}

/** Reads the magic and says whether a file looks like GGUF (used to detect formats by content). */
export function looksLikeGguf(firstBytes: Uint8Array): boolean {
  return firstBytes.length >= 4 && String.fromCharCode(...firstBytes.subarray(0, 4)) === GGUF_MAGIC
}
