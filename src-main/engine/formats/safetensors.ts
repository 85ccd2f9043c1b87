// safetensors reader: single files and sharded checkpoints (model.safetensors.index.json).
// Opening reads only the header (u64 length + JSON), so the tensor index is available without touching data.
//
// Rules enforced (after huggingface/safetensors' own validation):
// - header length ≤ 100 MB and inside the file; header is UTF-8 JSON whose first byte is '{';
// - every entry has a known dtype, a shape of non-negative integers, and [begin, end] offsets;
// - end − begin == prod(shape) · sizeof(dtype), computed without leaving the safe-integer range;
// - tensors lie inside the data buffer and do not overlap; names are unique (JSON.parse would keep only the
//   last of two equal names, so duplicates are found by a separate scan and rejected).
// The reference also demands that tensors cover the buffer contiguously. Gaps waste space but cannot make a
// read wrong, so they are reported as warnings rather than refused; overlaps are errors.

import { stat } from 'node:fs/promises'
import { dirname, isAbsolute, relative, resolve, sep } from 'node:path'
import { WhittleError, formatError, showValue } from '../errors'
import { handleSize, ioError, readFully, withFileHandle, closeFile } from '../io/ranged-file'
import { SAFETENSORS_DTYPES, dtypeGeometry, safeMultiply, safeProduct } from './dtype-info'
import { findDuplicateTopLevelKey } from './json-keys'
import { INLINE_PARSE_BYTES, MAX_INDEX_JSON_BYTES, MAX_SAFETENSORS_HEADER_BYTES, MAX_TENSORS } from './limits'
import { runParseJob } from './parse-worker-host'
import type { DType, TensorEntry } from './types'

export { MAX_TENSORS }
/** The reference implementation's cap on the JSON header (limits.ts). */
export const MAX_HEADER_BYTES = MAX_SAFETENSORS_HEADER_BYTES
/** An index file is a small JSON map; refuse to slurp anything larger (limits.ts). */
export const MAX_INDEX_BYTES = MAX_INDEX_JSON_BYTES

const KNOWN_DTYPES = new Set<string>(SAFETENSORS_DTYPES)

export interface SafetensorsFile {
  path: string
  size: number
  headerLength: number
  /** Absolute offset of the data buffer (8 + header length). */
  dataStart: number
  /** In data order (by offset). */
  tensors: TensorEntry[]
  metadata: Record<string, string>
  warnings: string[]
}

export interface SafetensorsModel {
  files: string[]
  tensors: TensorEntry[]
  metadata: Record<string, unknown>
  warnings: string[]
  sizeOnDisk: number
}

/** defineProperty, not assignment: a key named "__proto__" from a file must stay a plain entry. */
function setOwn(record: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(record, key, { value, enumerable: true, writable: true, configurable: true })
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0
}

/** The bytes every tensor entry carries (its offsets key), counted before any decoding or parsing. */
const OFFSETS_KEY = new TextEncoder().encode('"data_offsets"')

/**
 * An upper bound on the tensors a header lists, by a byte scan: every entry needs a "data_offsets" key,
 * so a header with more such strings than MAX_TENSORS is refused before JSON.parse spends seconds on it.
 * (Names or metadata containing the string only raise the count, and only a hostile file has 2^17 of them.)
 */
function countOffsetKeys(header: Uint8Array): number {
  const bytes = Buffer.from(header.buffer, header.byteOffset, header.byteLength)
  let n = 0
  for (let at = bytes.indexOf(OFFSETS_KEY); at !== -1; at = bytes.indexOf(OFFSETS_KEY, at + OFFSETS_KEY.length)) {
    if (++n > MAX_TENSORS) break
  }
  return n
}

interface RawEntry {
  name: string
  dtype: DType
  shape: number[]
  begin: number
  end: number
}

function parseEntry(path: string, name: string, value: unknown): RawEntry {
  const where = `tensor "${name}"`
  if (!isPlainObject(value)) throw formatError(path, `${where}: header entry is not an object`)
  const { dtype, shape, data_offsets: offsets } = value
  if (typeof dtype !== 'string') throw formatError(path, `${where}: dtype is missing or not a string`)
  if (!KNOWN_DTYPES.has(dtype))
    throw new WhittleError('unsupported', path, `${where}: unknown or unsupported dtype "${dtype}"`)
  if (!Array.isArray(shape)) throw formatError(path, `${where}: shape is missing or not an array`)
  for (const d of shape) {
    if (!isCount(d))
      throw formatError(path, `${where}: shape ${showValue(shape)} has a dimension that is not a non-negative integer`)
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !isCount(offsets[0]) || !isCount(offsets[1])) {
    throw formatError(path, `${where}: data_offsets must be two non-negative integers, got ${showValue(offsets)}`)
  }
  const [begin, end] = offsets as [number, number]
  if (end < begin) throw formatError(path, `${where}: data_offsets [${begin}, ${end}] end before they begin`)
  const numel = safeProduct(shape as number[])
  const bytes = numel === null ? null : safeMultiply(numel, dtypeGeometry(dtype as DType).blockBytes)
  if (bytes === null) throw formatError(path, `${where}: shape ${JSON.stringify(shape)} is too large to address`)
  if (end - begin !== bytes) {
    throw formatError(
      path,
      `${where}: data_offsets span ${end - begin} bytes, but shape ${JSON.stringify(shape)} of ${dtype} needs ${bytes}`,
    )
  }
  return { name, dtype: dtype as DType, shape: shape as number[], begin, end }
}

export interface ParsedHeader {
  entries: RawEntry[]
  metadata: Record<string, string>
  warnings: string[]
}

/**
 * A parsed header in columns, as the parser worker sends it back: a hundred thousand small objects cost
 * the receiving thread tens of milliseconds to deserialize, a few typed arrays and one string almost nothing.
 */
export interface HeaderColumns {
  names: string
  nameLengths: Uint32Array
  dtypes: Uint8Array
  ranks: Uint32Array
  dims: Float64Array
  offsets: Float64Array
  metadata: Record<string, string>
  warnings: string[]
}

export function headerToColumns(h: ParsedHeader): HeaderColumns {
  const n = h.entries.length
  const nameLengths = new Uint32Array(n),
    dtypes = new Uint8Array(n),
    ranks = new Uint32Array(n),
    offsets = new Float64Array(2 * n)
  const dims: number[] = []
  h.entries.forEach((e, i) => {
    nameLengths[i] = e.name.length
    dtypes[i] = SAFETENSORS_DTYPES.indexOf(e.dtype)
    ranks[i] = e.shape.length
    for (const x of e.shape) dims.push(x)
    offsets[2 * i] = e.begin
    offsets[2 * i + 1] = e.end
  })
  return {
    names: h.entries.map((e) => e.name).join(''),
    nameLengths,
    dtypes,
    ranks,
    dims: Float64Array.from(dims),
    offsets,
    metadata: h.metadata,
    warnings: h.warnings,
  }
}

/** Entries rebuilt per slice, with the event loop let through between slices. */
const ENTRIES_PER_SLICE = 8192

/**
 * The tensor entries of a header sent in columns. Built in slices with a yield between them, so even at
 * MAX_TENSORS the thread that receives them is never busy for more than a few milliseconds at a time.
 */
export async function tensorsFromColumns(c: HeaderColumns, file: string, dataStart: number): Promise<TensorEntry[]> {
  const tensors: TensorEntry[] = []
  let at = 0,
    d = 0
  for (let i = 0; i < c.nameLengths.length; i++) {
    if (i > 0 && i % ENTRIES_PER_SLICE === 0) await new Promise((r) => setImmediate(r))
    const name = c.names.slice(at, at + c.nameLengths[i])
    at += c.nameLengths[i]
    const shape: number[] = []
    for (const end = d + c.ranks[i]; d < end; d++) shape.push(c.dims[d])
    const begin = c.offsets[2 * i],
      end = c.offsets[2 * i + 1]
    tensors.push({
      name,
      dtype: SAFETENSORS_DTYPES[c.dtypes[i]],
      shape,
      file,
      offset: dataStart + begin,
      byteLength: end - begin,
    })
  }
  return tensors
}

/** The transferable buffers of a HeaderColumns. */
export function columnBuffers(c: HeaderColumns): ArrayBuffer[] {
  return [c.nameLengths, c.dtypes, c.ranks, c.dims, c.offsets].map((a) => a.buffer as ArrayBuffer)
}

/**
 * Validates a header already read from disk. Pure: `dataLength` is the number of bytes after the header.
 * Exported for tests and for tools that hold a header in memory.
 */
export function parseSafetensorsHeader(path: string, headerBytes: Uint8Array, dataLength: number): ParsedHeader {
  if (headerBytes.length === 0 || headerBytes[0] !== 0x7b)
    throw formatError(path, 'header does not start with "{" (not a safetensors file?)')
  if (countOffsetKeys(headerBytes) > MAX_TENSORS)
    throw formatError(
      path,
      `header lists more than ${MAX_TENSORS} tensors, more than any real checkpoint (limit ${MAX_TENSORS})`,
    )
  let text: string
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(headerBytes)
  } catch {
    throw formatError(path, 'header is not valid UTF-8')
  }
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (e) {
    throw formatError(path, `header is not valid JSON (${e instanceof Error ? e.message : String(e)})`)
  }
  if (!isPlainObject(json)) throw formatError(path, 'header is not a JSON object')
  const keys = Object.keys(json)
  if (keys.length > MAX_TENSORS + 1)
    throw formatError(path, `header lists ${keys.length} entries; more than ${MAX_TENSORS} tensors is not plausible`)
  const duplicate = findDuplicateTopLevelKey(text)
  if (duplicate !== null) throw formatError(path, `tensor name "${duplicate}" appears twice in the header`)

  const metadata: Record<string, string> = {}
  const entries: RawEntry[] = []
  for (const key of keys) {
    const value = json[key]
    if (key === '__metadata__') {
      if (!isPlainObject(value)) throw formatError(path, '__metadata__ is not an object')
      for (const [k, v] of Object.entries(value)) {
        if (typeof v !== 'string') throw formatError(path, `__metadata__ value for "${k}" is not a string`)
        setOwn(metadata, k, v)
      }
      continue
    }
    entries.push(parseEntry(path, key, value))
  }

  entries.sort((a, b) => a.begin - b.begin || a.end - b.end)
  const warnings: string[] = []
  let covered = 0
  let gapBytes = 0
  let gapCount = 0
  let previous: RawEntry | null = null
  for (const e of entries) {
    if (e.end > dataLength) {
      throw new WhittleError(
        'truncated',
        path,
        `tensor "${e.name}" ends at byte ${e.end} of the data buffer, but the file holds only ${dataLength} bytes of data (truncated, or offsets out of range)`,
      )
    }
    if (e.end === e.begin) continue // empty tensors occupy nothing and cannot overlap
    if (e.begin < covered && previous) {
      throw formatError(
        path,
        `tensors "${previous.name}" and "${e.name}" overlap (bytes ${e.begin}..${Math.min(covered, e.end)} of the data buffer)`,
      )
    }
    if (e.begin > covered) {
      gapCount++
      gapBytes += e.begin - covered
    }
    covered = e.end
    previous = e
  }
  if (gapCount > 0) warnings.push(`${gapBytes} bytes in ${gapCount} gap(s) between tensors are not used by any tensor`)
  if (dataLength > covered)
    warnings.push(`${dataLength - covered} bytes after the last tensor are not used by any tensor`)
  return { entries, metadata, warnings }
}

/** Opens one .safetensors file and validates its header. Reads 8 + header-length bytes. */
export async function readSafetensors(path: string): Promise<SafetensorsFile> {
  const abs = resolve(path)
  // A replaced file must not be read through a handle to its predecessor.
  closeFile(abs)
  return withFileHandle(abs, async (handle) => {
    const size = await handleSize(handle, abs)
    if (size < 8)
      throw new WhittleError('truncated', abs, `file is ${size} bytes, too short for the 8-byte header length`)
    const lengthBytes = new Uint8Array(8)
    await readFully(handle, abs, 0, lengthBytes)
    const claimed = new DataView(lengthBytes.buffer).getBigUint64(0, true)
    if (claimed > BigInt(MAX_HEADER_BYTES)) {
      throw formatError(
        abs,
        `header length ${claimed} exceeds the ${MAX_HEADER_BYTES}-byte limit (not a safetensors file, or corrupt)`,
      )
    }
    const headerLength = Number(claimed)
    if (headerLength > size - 8) {
      throw new WhittleError(
        'truncated',
        abs,
        `header length ${headerLength} runs past the end of the ${size}-byte file`,
      )
    }
    const header = new Uint8Array(headerLength)
    await readFully(handle, abs, 8, header)
    const dataStart = 8 + headerLength
    const dataLength = size - dataStart
    if (headerLength > INLINE_PARSE_BYTES) {
      // A large header's JSON.parse and checks take long enough to stall the event loop: the parser worker does them.
      const columns = await runParseJob<HeaderColumns>(
        { kind: 'safetensors-header', path: abs, header, dataLength },
        abs,
        async () => headerToColumns(parseSafetensorsHeader(abs, header, dataLength)),
      )
      const tensors = await tensorsFromColumns(columns, abs, dataStart)
      return {
        path: abs,
        size,
        headerLength,
        dataStart,
        tensors,
        metadata: columns.metadata,
        warnings: columns.warnings,
      }
    }
    const { entries, metadata, warnings } = parseSafetensorsHeader(abs, header, dataLength)
    const tensors: TensorEntry[] = entries.map((e) => ({
      name: e.name,
      dtype: e.dtype,
      shape: e.shape,
      file: abs,
      offset: dataStart + e.begin,
      byteLength: e.end - e.begin,
    }))
    return { path: abs, size, headerLength, dataStart, tensors, metadata, warnings }
  })
}

/** Opens a single-file checkpoint as a model. */
export async function openSafetensorsFile(path: string): Promise<SafetensorsModel> {
  const f = await readSafetensors(path)
  return {
    files: [f.path],
    tensors: f.tensors,
    metadata: { ...f.metadata },
    warnings: f.warnings.map((w) => `${f.path}: ${w}`),
    sizeOnDisk: f.size,
  }
}

/** Reads and parses a small JSON file, refusing anything over `limit` bytes. */
export async function readJsonFile(
  path: string,
  limit: number,
  code: 'format' | 'config' = 'format',
): Promise<unknown> {
  let size: number
  try {
    size = (await stat(path)).size
  } catch (e) {
    throw ioError(path, e, 'stat')
  }
  if (size > limit) throw new WhittleError(code, path, `${size} bytes is too large for this JSON file (limit ${limit})`)
  const bytes = new Uint8Array(size)
  await withFileHandle(path, (h) => readFully(h, path, 0, bytes))
  closeFile(path)
  let text: string
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes)
  } catch {
    throw new WhittleError(code, path, 'not valid UTF-8')
  }
  try {
    return JSON.parse(text)
  } catch (e) {
    throw new WhittleError(code, path, `not valid JSON (${e instanceof Error ? e.message : String(e)})`)
  }
}

/** Resolves a shard name from an index against its folder, refusing names that escape the folder. */
function shardPath(indexPath: string, folder: string, name: string): string {
  if (name.length === 0 || isAbsolute(name) || name.includes('\0')) {
    throw formatError(indexPath, `weight_map names an invalid shard file "${name}"`)
  }
  const full = resolve(folder, name)
  const rel = relative(folder, full)
  if (rel.startsWith('..') || isAbsolute(rel) || rel.split(sep).includes('..')) {
    throw formatError(indexPath, `weight_map shard "${name}" lies outside the index's folder`)
  }
  return full
}

/**
 * Opens a sharded checkpoint through its index. Every shard the index names is opened and validated;
 * a tensor listed for a shard that lacks it, or held by a shard that the index does not list it for,
 * is an error naming that shard.
 */
export async function openShardedSafetensors(indexPath: string): Promise<SafetensorsModel> {
  const abs = resolve(indexPath)
  const index = await readJsonFile(abs, MAX_INDEX_BYTES)
  if (!isPlainObject(index)) throw formatError(abs, 'index is not a JSON object')
  const weightMap = index.weight_map
  if (!isPlainObject(weightMap)) throw formatError(abs, 'index has no weight_map object')
  const names = Object.keys(weightMap)
  if (names.length === 0) throw formatError(abs, 'weight_map is empty')
  if (names.length > MAX_TENSORS)
    throw formatError(abs, `weight_map lists ${names.length} tensors; more than ${MAX_TENSORS} is not plausible`)

  const folder = dirname(abs)
  const expected = new Map<string, Set<string>>() // shard path -> tensor names the index assigns to it
  for (const name of names) {
    const shard = weightMap[name]
    if (typeof shard !== 'string') throw formatError(abs, `weight_map entry for "${name}" is not a file name`)
    const file = shardPath(abs, folder, shard)
    let set = expected.get(file)
    if (!set) expected.set(file, (set = new Set()))
    set.add(name)
  }

  const shardFiles = [...expected.keys()].sort()
  const tensors: TensorEntry[] = []
  const warnings: string[] = []
  const metadata: Record<string, unknown> = {}
  let sizeOnDisk = 0
  for (const file of shardFiles) {
    const shard = await readSafetensors(file)
    const listed = expected.get(file)!
    for (const t of shard.tensors) {
      if (!listed.has(t.name)) {
        throw formatError(file, `holds tensor "${t.name}", which ${abs} does not list for this shard`)
      }
    }
    if (shard.tensors.length !== listed.size) {
      const present = new Set(shard.tensors.map((t) => t.name))
      const missing = [...listed].find((n) => !present.has(n))
      throw formatError(file, `does not contain tensor "${missing}", which ${abs} lists for this shard`)
    }
    tensors.push(...shard.tensors)
    for (const [k, v] of Object.entries(shard.metadata)) setOwn(metadata, k, v)
    warnings.push(...shard.warnings.map((w) => `${file}: ${w}`))
    sizeOnDisk += shard.size
  }
  if (isPlainObject(index.metadata)) {
    for (const [k, v] of Object.entries(index.metadata)) setOwn(metadata, k, v)
    const declared = index.metadata.total_size
    const actual = tensors.reduce((s, t) => s + t.byteLength, 0)
    if (typeof declared === 'number' && declared !== actual) {
      warnings.push(`${abs}: metadata.total_size is ${declared}, but the shards' tensors hold ${actual} bytes`)
    }
  }
  return { files: shardFiles, tensors, metadata, warnings, sizeOnDisk }
}
