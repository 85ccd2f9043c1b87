// Safetensors-aware mutations: the u64 header length, the JSON header's offsets, shapes, dtypes and names
// (including JavaScript built-in names and dtype changes that keep the byte length, which reach the code
// that reads a tensor as a specific type), and the data of chosen tensors (GPTQ g_idx, weight_shape...).

import { encodeJsonText, mutateJson, BUILTIN_NAMES, type JsonPath } from './mutate-json'
import { mutateBytes, type Mutated } from './mutate-bytes'
import type { Rng } from './prng'

type Header = Record<
  string,
  { dtype: string; shape: number[]; data_offsets: [number, number] } | Record<string, string>
>

export interface ParsedSafetensors {
  header: Header
  headerBytes: number
  data: Uint8Array
  names: string[]
}

const DTYPE_SIZES: Record<string, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  F8_E4M3: 1,
  F8_E5M2: 1,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U64: 8,
  U32: 4,
  U16: 2,
  U8: 1,
  BOOL: 1,
}
const ODD_DTYPES = [
  'Q4_K',
  'F4',
  'F6_E2M3',
  'E8M0',
  'C64',
  'f32',
  'float32',
  '',
  'constructor',
  '__proto__',
  'toString',
]

export function parseSafetensors(bytes: Uint8Array): ParsedSafetensors {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true))
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n))) as Header
  return {
    header,
    headerBytes: n,
    data: bytes.subarray(8 + n),
    names: Object.keys(header).filter((k) => k !== '__metadata__'),
  }
}

/** Header JSON + data back into a file; the header is space-padded to 8 bytes as writers do. */
export function assembleSafetensors(json: Uint8Array, data: Uint8Array, claimedLength?: bigint): Uint8Array {
  const pad = (8 - (json.length % 8)) % 8
  const n = json.length + pad
  const out = new Uint8Array(8 + n + data.length)
  new DataView(out.buffer).setBigUint64(0, claimedLength ?? BigInt(n), true)
  out.set(json, 8)
  out.fill(0x20, 8 + json.length, 8 + n)
  out.set(data, 8 + n)
  return out
}

function entryOf(
  p: ParsedSafetensors,
  name: string,
): { dtype: string; shape: number[]; data_offsets: [number, number] } {
  return p.header[name] as { dtype: string; shape: number[]; data_offsets: [number, number] }
}

/** Values that fit a header field: dtypes for "dtype", plausible-but-wrong shapes and ranges. */
function fieldValue(parsed: ParsedSafetensors, path: JsonPath, old: unknown, rng: Rng): unknown {
  const field = path[1]
  if (path.length === 2 && field === 'dtype')
    return rng.chance(0.7) ? rng.pick(Object.keys(DTYPE_SIZES)) : rng.pick(ODD_DTYPES)
  if (path.length === 2 && field === 'shape' && Array.isArray(old)) {
    return rng.pick([
      [...old].reverse(),
      [...old, 1],
      old.slice(1),
      [0, ...old.slice(1)],
      [2 ** 53, 1],
      [2 ** 31, 2 ** 31],
      [-1, ...old.slice(1)],
      old.map((d: number) => d * 2),
      [old.reduce((a: number, b: number) => a * b, 1)],
      [1, 1, 1, 1, 1, 1, 1, 1, 1],
      [65536, 65536, 65536],
      [1.5, 2],
      ['64'],
      [2 ** 64],
    ])
  }
  if (path.length === 2 && field === 'data_offsets' && Array.isArray(old)) {
    const [a, b] = old as number[]
    const other = entryOf(parsed, rng.pick(parsed.names)).data_offsets
    return rng.pick([
      [b, a],
      [a, b + 1],
      [a, b - 1],
      [a + 1, b],
      [0, b - a],
      other,
      [other[0], other[0] + (b - a)],
      [a, 2 ** 53],
      [2 ** 53, 2 ** 53 + (b - a)],
      [-(b - a), 0],
      [a, a],
      [a + 0.5, b + 0.5],
      [a, 2 ** 64],
      [a, parsed.data.length + 8],
      [String(a), b],
      [a],
    ])
  }
  return undefined
}

/** Changes a tensor's dtype and its last dimension so the byte length is unchanged: the header still fits. */
function retypeKeepingLength(
  parsed: ParsedSafetensors,
  rng: Rng,
  names: string[],
): { header: Header; what: string; name: string } | null {
  const name = rng.pick(names)
  const e = entryOf(parsed, name)
  const bytes = e.data_offsets[1] - e.data_offsets[0]
  const dtype = rng.pick(Object.keys(DTYPE_SIZES).filter((d) => d !== e.dtype))
  const size = DTYPE_SIZES[dtype]
  const outer = e.shape.slice(0, -1).reduce((a, b) => a * b, 1)
  if (e.shape.length === 0 || bytes % (size * outer) !== 0) return null
  const shape = [...e.shape.slice(0, -1), bytes / size / outer]
  const header = { ...parsed.header, [name]: { ...e, dtype, shape } }
  return {
    header,
    name,
    what: `"${name}" retyped ${e.dtype}${JSON.stringify(e.shape)} → ${dtype}${JSON.stringify(shape)} (same bytes)`,
  }
}

/** Changes a tensor's dtype to one no wider, keeping its shape; its data range shrinks to fit (a gap follows). */
function retypeKeepingShape(
  parsed: ParsedSafetensors,
  rng: Rng,
  names: string[],
): { header: Header; what: string; name: string } | null {
  const name = rng.pick(names)
  const e = entryOf(parsed, name)
  const oldSize = DTYPE_SIZES[e.dtype] ?? 0
  const options = Object.keys(DTYPE_SIZES).filter((d) => d !== e.dtype && DTYPE_SIZES[d] <= oldSize)
  if (options.length === 0) return null
  const dtype = rng.pick(options)
  const numel = e.shape.reduce((a, b) => a * b, 1)
  const data_offsets: [number, number] = [e.data_offsets[0], e.data_offsets[0] + numel * DTYPE_SIZES[dtype]]
  const header = { ...parsed.header, [name]: { ...e, dtype, data_offsets } }
  return { header, name, what: `"${name}" retyped ${e.dtype} → ${dtype}, shape ${JSON.stringify(e.shape)} kept` }
}

/** Interesting little-endian int32 values written over a tensor's data (group indices, shapes, zeros). */
function mutateTensorData(
  parsed: ParsedSafetensors,
  rng: Rng,
  names: string[],
): { data: Uint8Array; what: string; name: string } {
  const name = rng.pick(names)
  const [a, b] = entryOf(parsed, name).data_offsets
  const data = parsed.data.slice()
  const view = new DataView(data.buffer)
  const words = Math.floor((b - a) / 4)
  if (words === 0) return { data, name, what: `"${name}" data unchanged (empty)` }
  const n = rng.chance(0.5) ? 1 : 1 + rng.int(words)
  const value = rng.pick([-1, 0x7fffffff, -0x80000000, 1 << 20, 65536, 1e9, 0xffff, 255, 16, 2 ** 30, rng.u32() | 0])
  for (let i = 0; i < n; i++) view.setInt32(a + 4 * rng.int(words), value, true)
  return { data, name, what: `"${name}" data: ${n} int32 words := ${value}` }
}

export interface SafetensorsFocus {
  /** Tensors to aim the header and data mutations at (default: all). */
  tensors?: (name: string) => boolean
}

export function mutateSafetensors(
  src: Uint8Array,
  parsed: ParsedSafetensors,
  rng: Rng,
  focus: SafetensorsFocus = {},
): Mutated {
  const aimed = focus.tensors ? parsed.names.filter(focus.tensors) : parsed.names
  const names = aimed.length > 0 && rng.chance(0.8) ? aimed : parsed.names
  const kind = rng.weighted({
    bytes: 3,
    headerBytes: 2,
    json: 8,
    builtinName: 2,
    retype: focus.tensors ? 2 : 1,
    retypeShape: focus.tensors ? 2 : 0.5,
    data: focus.tensors ? 2 : 0.5,
    headerLength: 1,
  })
  const encode = (header: Header): Uint8Array => new TextEncoder().encode(JSON.stringify(header))
  switch (kind) {
    case 'bytes':
      return mutateBytes(src, rng, 8 + parsed.headerBytes)
    case 'headerBytes': {
      // Byte-level faults confined to the JSON, with the length field kept consistent.
      const m = mutateBytes(src.subarray(8, 8 + parsed.headerBytes), rng, parsed.headerBytes)
      return { bytes: assembleSafetensors(m.bytes, parsed.data), what: `header JSON: ${m.what}` }
    }
    case 'headerLength': {
      const n = BigInt(parsed.headerBytes)
      const claimed = rng.pick([
        0n,
        1n,
        2n,
        n - 1n,
        n + 1n,
        n + 8n,
        BigInt(src.length),
        BigInt(src.length - 7),
        2n ** 32n,
        2n ** 53n,
        2n ** 63n,
        2n ** 64n - 1n,
        99_999_999n,
        100_000_001n,
      ])
      return {
        bytes: assembleSafetensors(encode(parsed.header), parsed.data, claimed),
        what: `header length := ${claimed}`,
      }
    }
    case 'builtinName': {
      const name = rng.pick(names)
      const builtin = rng.pick(BUILTIN_NAMES)
      const parts = name.split('.')
      parts[rng.int(parts.length)] = builtin
      const to = rng.chance(0.3) ? builtin : parts.join('.')
      const header: Header = {}
      for (const k of Object.keys(parsed.header))
        Object.defineProperty(header, k === name ? to : k, {
          value: parsed.header[k],
          enumerable: true,
          writable: true,
          configurable: true,
        })
      return {
        bytes: assembleSafetensors(encode(header), parsed.data),
        what: `tensor "${name}" renamed "${to}"`,
        targets: [name, to],
      }
    }
    case 'retype':
    case 'retypeShape': {
      const r = kind === 'retype' ? retypeKeepingLength(parsed, rng, names) : retypeKeepingShape(parsed, rng, names)
      if (r) return { bytes: assembleSafetensors(encode(r.header), parsed.data), what: r.what, targets: [r.name] }
      return mutateBytes(src, rng, 8 + parsed.headerBytes)
    }
    case 'data': {
      const d = mutateTensorData(parsed, rng, names)
      return { bytes: assembleSafetensors(encode(parsed.header), d.data), what: d.what, targets: [d.name] }
    }
    case 'json': {
      const aimedSet = new Set(names)
      const m = mutateJson(parsed.header as never, rng, {
        focus: (p) => p.length >= 1 && aimedSet.has(String(p[0])),
        values: (p, old, r) => fieldValue(parsed, p, old, r) as never,
      })
      const enc = encodeJsonText(m, rng)
      return {
        bytes: assembleSafetensors(enc.bytes, parsed.data),
        what: `header ${enc.what}`,
        targets: m.path ? [String(m.path[0])] : undefined,
      }
    }
  }
}
