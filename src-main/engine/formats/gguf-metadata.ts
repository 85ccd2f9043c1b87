// GGUF metadata values: the typed KV encoding shared by the reader (gguf.ts) and the writer.
// A value is a type tag (u32) and its payload; strings are u64 length + UTF-8 bytes; arrays are an item
// type, a u64 count and the items (arrays may nest). Every count is checked against the bytes left in the
// file before anything is allocated or skipped.

import { WhittleError, formatError } from '../errors'
import type { FileCursor } from '../io/byte-cursor'

export const GGUF_VALUE_TYPES = [
  'u8',
  'i8',
  'u16',
  'i16',
  'u32',
  'i32',
  'f32',
  'bool',
  'string',
  'array',
  'u64',
  'i64',
  'f64',
] as const
export type GgufValueType = (typeof GGUF_VALUE_TYPES)[number]

/** Payload bytes of the fixed-size types. */
export const GGUF_FIXED_SIZES: Readonly<Partial<Record<GgufValueType, number>>> = {
  u8: 1,
  i8: 1,
  u16: 2,
  i16: 2,
  u32: 4,
  i32: 4,
  f32: 4,
  bool: 1,
  u64: 8,
  i64: 8,
  f64: 8,
}

/** Smallest encoding of one item of a type: used to bound claimed counts by the bytes really left. */
export function minItemBytes(type: GgufValueType): number {
  if (type === 'string') return 8 // u64 length, possibly empty
  if (type === 'array') return 4 + 8 // item type + count
  return GGUF_FIXED_SIZES[type]!
}

/** Arrays longer than this are summarised in ModelFiles.metadata; read them in full with readGgufArray. */
export const INLINE_ARRAY_LIMIT = 64
/** Longest string value accepted; real metadata strings (chat templates, licences) stay far below. */
export const MAX_STRING_BYTES = 64 << 20
/** Keys and tensor names are identifiers; anything longer is corruption. */
export const MAX_KEY_BYTES = 1 << 16
/** Nesting depth of arrays of arrays. */
export const MAX_ARRAY_DEPTH = 8

/** 64-bit integers become numbers when exact, bigints otherwise. */
export type GgufScalar = number | bigint | boolean | string

/** Stands in for a long array in the metadata record. */
export interface GgufArraySummary {
  type: 'array'
  itemType: GgufValueType
  length: number
}

export type GgufMetadataValue = GgufScalar | GgufMetadataValue[] | GgufArraySummary

/** A whole array as readGgufArray returns it: typed arrays for numbers, plain arrays otherwise. */
export type GgufArrayValue =
  | Uint8Array
  | Int8Array
  | Uint16Array
  | Int16Array
  | Uint32Array
  | Int32Array
  | Float32Array
  | BigUint64Array
  | BigInt64Array
  | Float64Array
  | boolean[]
  | string[]
  | GgufArrayValue[]

/** Where an array's items start, so it can be read later without keeping it in memory. */
export interface GgufArrayLocation {
  itemType: GgufValueType
  length: number
  /** Absolute file offset of the first item. */
  offset: number
}

const lenientUtf8 = new TextDecoder('utf-8')
const strictUtf8 = new TextDecoder('utf-8', { fatal: true })

/**
 * What one KV's value may still take: bytes (strings, and arrays at their smallest encoding) and items per
 * array. Checked against claimed lengths before anything is read or skipped, so a value over the cap costs
 * nothing to refuse. `cap` names the limit in error messages.
 */
export interface ValueBudget {
  bytes: number
  items: number
  cap: string
}

const UNBOUNDED: ValueBudget = { bytes: Number.MAX_SAFE_INTEGER, items: Number.MAX_SAFE_INTEGER, cap: '' }

export function isSummary(v: GgufMetadataValue): v is GgufArraySummary {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/** Reads a u64 and returns it as a number, or throws when it cannot be an in-file quantity. */
export async function readCount(c: FileCursor, what: string): Promise<number> {
  await c.ensure(8, what)
  const v = c.u64()
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw formatError(c.path, `${what} is ${v}, beyond any file size`)
  return Number(v)
}

/** Reads the u32 type tag of a value or array item type. */
export async function readValueType(c: FileCursor, what: string): Promise<GgufValueType> {
  await c.ensure(4, what)
  const at = c.position
  const id = c.u32()
  const type = GGUF_VALUE_TYPES[id]
  if (type === undefined) throw formatError(c.path, `${what} has unknown value type ${id} at offset ${at}`)
  return type
}

/**
 * Reads a GGUF string. `strict` refuses invalid UTF-8 (for keys and tensor names); values are decoded
 * leniently because some vocabularies store raw byte pieces.
 */
export async function readString(c: FileCursor, what: string, limit: number, strict: boolean): Promise<string> {
  return readStringBody(c, what, await readCount(c, `${what} length`), limit, strict)
}

/** The bytes of a string whose u64 length was just read. */
async function readStringBody(
  c: FileCursor,
  what: string,
  length: number,
  limit: number,
  strict: boolean,
): Promise<string> {
  if (length > c.remaining()) {
    throw new WhittleError(
      'truncated',
      c.path,
      `${what} claims ${length} bytes at offset ${c.position}, but only ${c.remaining()} remain in the file`,
    )
  }
  if (length > limit)
    throw formatError(c.path, `${what} claims ${length} bytes at offset ${c.position}, over the ${limit}-byte limit`)
  await c.ensure(length, what)
  const bytes = c.take(length)
  if (!strict) return lenientUtf8.decode(bytes)
  try {
    return strictUtf8.decode(bytes)
  } catch {
    throw formatError(c.path, `${what} is not valid UTF-8`)
  }
}

function int64(v: bigint): number | bigint {
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v
}

async function readScalar(
  c: FileCursor,
  type: GgufValueType,
  what: string,
  budget: ValueBudget = UNBOUNDED,
): Promise<GgufScalar> {
  if (type === 'string') {
    if (budget.bytes >= MAX_STRING_BYTES) return readString(c, what, MAX_STRING_BYTES, false)
    const at = c.position
    const length = await readCount(c, `${what} length`)
    if (length > budget.bytes && length <= c.remaining())
      throw formatError(c.path, `${what} claims ${length} bytes at offset ${at}, over ${budget.cap}`)
    return readStringBody(c, what, length, MAX_STRING_BYTES, false)
  }
  await c.ensure(GGUF_FIXED_SIZES[type]!, what)
  switch (type) {
    case 'u8':
      return c.u8()
    case 'i8':
      return c.i8()
    case 'u16':
      return c.u16()
    case 'i16':
      return c.i16()
    case 'u32':
      return c.u32()
    case 'i32':
      return c.i32()
    case 'f32':
      return c.f32()
    case 'f64':
      return c.f64()
    case 'u64':
      return int64(c.u64())
    case 'i64':
      return int64(c.i64())
    case 'bool': {
      const b = c.u8()
      if (b > 1) throw formatError(c.path, `${what}: bool byte is ${b}, not 0 or 1`)
      return b === 1
    }
    default:
      throw new Error(`unreachable: ${type}`)
  }
}

/** Reads an array header (item type + count) and checks the count against the bytes left and the budget. */
export async function readArrayHeader(
  c: FileCursor,
  what: string,
  budget: ValueBudget = UNBOUNDED,
): Promise<{ itemType: GgufValueType; length: number }> {
  const itemType = await readValueType(c, `${what} item type`)
  const length = await readCount(c, `${what} count`)
  const room = Math.floor(c.remaining() / minItemBytes(itemType))
  if (length > room) {
    throw new WhittleError(
      'truncated',
      c.path,
      `${what} claims ${length} ${itemType} items at offset ${c.position}, but the file has room for at most ${room}`,
    )
  }
  if (length > budget.items || length * minItemBytes(itemType) > budget.bytes) {
    throw formatError(c.path, `${what} claims ${length} ${itemType} items at offset ${c.position}, over ${budget.cap}`)
  }
  return { itemType, length }
}

/** Advances past `length` items of `itemType` without keeping them. */
async function skipItems(
  c: FileCursor,
  itemType: GgufValueType,
  length: number,
  what: string,
  depth: number,
  budget: ValueBudget,
): Promise<void> {
  const fixed = GGUF_FIXED_SIZES[itemType]
  if (fixed !== undefined) {
    c.skip(length * fixed, what)
    return
  }
  for (let i = 0; i < length; i++) {
    if (itemType === 'string') {
      const n = await readCount(c, `${what}[${i}] length`)
      if (n > c.remaining())
        throw new WhittleError(
          'truncated',
          c.path,
          `${what}[${i}] claims ${n} bytes, but only ${c.remaining()} remain in the file`,
        )
      c.skip(n, what)
    } else {
      if (depth >= MAX_ARRAY_DEPTH) throw formatError(c.path, `${what}: arrays nested deeper than ${MAX_ARRAY_DEPTH}`)
      const inner = await readArrayHeader(c, `${what}[${i}]`, budget)
      await skipItems(c, inner.itemType, inner.length, what, depth + 1, budget)
    }
  }
}

/**
 * Reads one value of `type`. Arrays longer than INLINE_ARRAY_LIMIT are skipped and returned as a summary.
 * The location of every array is passed to `onArray`, so any of them can be read in full later.
 */
export async function readMetadataValue(
  c: FileCursor,
  type: GgufValueType,
  what: string,
  onArray: (loc: GgufArrayLocation) => void,
  depth = 0,
  budget: ValueBudget = UNBOUNDED,
): Promise<GgufMetadataValue> {
  if (type !== 'array') return readScalar(c, type, what, budget)
  if (depth >= MAX_ARRAY_DEPTH) throw formatError(c.path, `${what}: arrays nested deeper than ${MAX_ARRAY_DEPTH}`)
  const { itemType, length } = await readArrayHeader(c, what, budget)
  onArray({ itemType, length, offset: c.position })
  if (length > INLINE_ARRAY_LIMIT) {
    await skipItems(c, itemType, length, what, depth + 1, budget)
    return { type: 'array', itemType, length }
  }
  const items: GgufMetadataValue[] = []
  for (let i = 0; i < length; i++) {
    // Nested long arrays are summarised too, but only top-level locations are worth recording.
    items.push(await readMetadataValue(c, itemType, `${what}[${i}]`, () => {}, depth + 1, budget))
  }
  return items
}

const TYPED: Partial<Record<GgufValueType, new (n: number) => ArrayBufferView & { length: number }>> = {
  u8: Uint8Array,
  i8: Int8Array,
  u16: Uint16Array,
  i16: Int16Array,
  u32: Uint32Array,
  i32: Int32Array,
  f32: Float32Array,
  u64: BigUint64Array,
  i64: BigInt64Array,
  f64: Float64Array,
}

/** Reads `length` items of `itemType` in full (typed arrays for numbers). The count must already be checked. */
export async function readArrayItems(
  c: FileCursor,
  itemType: GgufValueType,
  length: number,
  what: string,
  depth = 0,
): Promise<GgufArrayValue> {
  const Typed = TYPED[itemType]
  if (Typed) {
    const size = GGUF_FIXED_SIZES[itemType]!
    const out = new Typed(length)
    const bytes = new Uint8Array(out.buffer, out.byteOffset, length * size)
    // Copy through the cursor's window in bounded steps so a long array never needs a second full-size buffer.
    const step = Math.max(size, Math.floor((1 << 20) / size) * size)
    for (let done = 0; done < bytes.length; done += step) {
      const n = Math.min(step, bytes.length - done)
      await c.ensure(n, what)
      bytes.set(c.take(n), done)
    }
    return out as GgufArrayValue
  }
  if (itemType === 'bool') {
    const out: boolean[] = []
    for (let i = 0; i < length; i++) out.push((await readScalar(c, 'bool', `${what}[${i}]`)) as boolean)
    return out
  }
  if (itemType === 'string') {
    const out: string[] = []
    for (let i = 0; i < length; i++) out.push(await readString(c, `${what}[${i}]`, MAX_STRING_BYTES, false))
    return out
  }
  if (depth >= MAX_ARRAY_DEPTH) throw formatError(c.path, `${what}: arrays nested deeper than ${MAX_ARRAY_DEPTH}`)
  const out: GgufArrayValue[] = []
  for (let i = 0; i < length; i++) {
    const inner = await readArrayHeader(c, `${what}[${i}]`)
    out.push(await readArrayItems(c, inner.itemType, inner.length, `${what}[${i}]`, depth + 1))
  }
  return out
}
