// GGUF-aware mutations. The seed is parsed once into its pieces (header counts, each key/value, each
// tensor info, the data section) with the byte position of every numeric field; a mutation either
// overwrites one field in place (counts, string lengths, value and array types, dims, tensor types,
// offsets, the alignment) or rebuilds the file with changed pieces (built-in names as the architecture
// or as tensor names, the architecture renamed with its keys, duplicated or dropped key/values).

import { mutateBytes, type Mutated } from './mutate-bytes'
import { BUILTIN_NAMES } from './mutate-json'
import type { Rng } from './prng'

interface Field {
  at: number
  width: 4 | 8
  label: string
}
interface Piece {
  start: number
  end: number
  name: string
}

export interface ParsedGguf {
  fields: Field[]
  kvs: (Piece & { type: number; valueAt: number })[]
  tensors: (Piece & { nameEnd: number })[]
  /** Where the tensor infos end (before the alignment padding) and the data section starts. */
  infosEnd: number
  dataStart: number
  alignment: number
}

const SCALAR_SIZES: Record<number, number> = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 }

export function parseGguf(b: Uint8Array): ParsedGguf {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength)
  const fields: Field[] = [
    { at: 4, width: 4, label: 'version' },
    { at: 8, width: 8, label: 'tensor count' },
    { at: 16, width: 8, label: 'kv count' },
  ]
  const tensorCount = Number(dv.getBigUint64(8, true)),
    kvCount = Number(dv.getBigUint64(16, true))
  let p = 24
  const str = (label: string): string => {
    fields.push({ at: p, width: 8, label: `${label} length` })
    const n = Number(dv.getBigUint64(p, true))
    const s = new TextDecoder().decode(b.subarray(p + 8, p + 8 + n))
    p += 8 + n
    return s
  }
  const value = (type: number, label: string): void => {
    if (type === 8) str(label)
    else if (type === 9) {
      fields.push({ at: p, width: 4, label: `${label} item type` })
      const itemType = dv.getUint32(p, true)
      fields.push({ at: p + 4, width: 8, label: `${label} item count` })
      const count = Number(dv.getBigUint64(p + 4, true))
      p += 12
      for (let i = 0; i < count; i++) {
        if (itemType === 8) {
          // Only the first few string lengths are worth recording as fields.
          if (i < 4 || i === count - 1) str(`${label}[${i}]`)
          else p += 8 + Number(dv.getBigUint64(p, true))
        } else if (itemType === 9) throw new Error('nested arrays are not in the seed')
        else p += SCALAR_SIZES[itemType]
      }
    } else {
      const size = SCALAR_SIZES[type]
      if (size === 4 || size === 8) fields.push({ at: p, width: size, label })
      p += size
    }
  }
  const kvs: ParsedGguf['kvs'] = []
  let alignment = 32
  for (let i = 0; i < kvCount; i++) {
    const start = p
    const name = str(`key ${i}`)
    fields.push({ at: p, width: 4, label: `${name} type` })
    const type = dv.getUint32(p, true)
    p += 4
    const valueAt = p
    if (name === 'general.alignment') alignment = dv.getUint32(p, true)
    value(type, name)
    kvs.push({ start, end: p, name, type, valueAt })
  }
  const tensors: ParsedGguf['tensors'] = []
  for (let i = 0; i < tensorCount; i++) {
    const start = p
    const name = str(`tensor ${i} name`)
    const nameEnd = p
    fields.push({ at: p, width: 4, label: `${name} n_dims` })
    const nDims = dv.getUint32(p, true)
    p += 4
    for (let d = 0; d < nDims; d++, p += 8) fields.push({ at: p, width: 8, label: `${name} dim ${d}` })
    fields.push({ at: p, width: 4, label: `${name} type` })
    p += 4
    fields.push({ at: p, width: 8, label: `${name} offset` })
    p += 8
    tensors.push({ start, end: p, name, nameEnd })
  }
  const dataStart = Math.ceil(p / alignment) * alignment
  return { fields, kvs, tensors, infosEnd: p, dataStart, alignment }
}

const enc = new TextEncoder()

function ggufString(s: string): Uint8Array {
  const bytes = enc.encode(s)
  const out = new Uint8Array(8 + bytes.length)
  new DataView(out.buffer).setBigUint64(0, BigInt(bytes.length), true)
  out.set(bytes, 8)
  return out
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0))
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.length
  }
  return out
}

/** Reassembles header + kvs + tensor infos + padding + data, with the counts matching the pieces given. */
function rebuild(src: Uint8Array, g: ParsedGguf, kvs: Uint8Array[], infos: Uint8Array[]): Uint8Array {
  const header = src.slice(0, 24)
  const dv = new DataView(header.buffer)
  dv.setBigUint64(8, BigInt(infos.length), true)
  dv.setBigUint64(16, BigInt(kvs.length), true)
  const head = concat([header, ...kvs, ...infos])
  const pad = new Uint8Array((g.alignment - (head.length % g.alignment)) % g.alignment)
  return concat([head, pad, src.subarray(g.dataStart)])
}

const FIELD_VALUES: bigint[] = [
  0n,
  1n,
  2n,
  3n,
  4n,
  5n,
  7n,
  8n,
  9n,
  12n,
  13n,
  31n,
  32n,
  33n,
  255n,
  256n,
  0x7fffffffn,
  0x80000000n,
  0xffffffffn,
  2n ** 32n,
  2n ** 40n,
  2n ** 53n,
  2n ** 63n - 1n,
  2n ** 63n,
  2n ** 64n - 1n,
  1n << 20n,
  (1n << 20n) + 1n,
]

function kvBytes(src: Uint8Array, k: ParsedGguf['kvs'][number]): Uint8Array {
  return src.subarray(k.start, k.end)
}

/** A key/value with a string value. */
function stringKv(key: string, value: string): Uint8Array {
  const type = new Uint8Array(4)
  new DataView(type.buffer).setUint32(0, 8, true)
  return concat([ggufString(key), type, ggufString(value)])
}

export function mutateGguf(src: Uint8Array, g: ParsedGguf, rng: Rng): Mutated {
  const kind = rng.weighted({
    bytes: 3,
    field: 6,
    fieldNudge: 2,
    archName: 3,
    stringValue: 2,
    keyName: 1,
    tensorName: 2,
    dropKv: 1,
    duplicateKv: 1,
    alignment: 1,
  })
  const kvs = g.kvs.map((k) => kvBytes(src, k))
  const infos = g.tensors.map((t) => src.subarray(t.start, t.end))
  switch (kind) {
    case 'bytes':
      return mutateBytes(src, rng, g.infosEnd)
    case 'field':
    case 'fieldNudge': {
      const f = rng.pick(g.fields)
      const out = src.slice()
      const dv = new DataView(out.buffer)
      const old = f.width === 8 ? dv.getBigUint64(f.at, true) : BigInt(dv.getUint32(f.at, true))
      const mask = f.width === 8 ? 2n ** 64n - 1n : 2n ** 32n - 1n
      const v =
        (kind === 'field' ? rng.pick(FIELD_VALUES) : old + rng.pick([1n, -1n, 2n, -2n, 8n, 32n, old, -old])) & mask
      if (f.width === 8) dv.setBigUint64(f.at, v, true)
      else dv.setUint32(f.at, Number(v), true)
      return { bytes: out, what: `${f.label} (at ${f.at}) ${old} := ${v}` }
    }
    case 'archName': {
      // The architecture named by a built-in; half the time its keys are renamed with it, so lookups
      // reach the geometry code instead of failing on a missing key.
      const arch = g.kvs.find((k) => k.name === 'general.architecture')
      if (!arch) return mutateBytes(src, rng, g.infosEnd)
      const old = new TextDecoder().decode(src.subarray(arch.valueAt + 8, arch.end))
      const to = rng.pick(BUILTIN_NAMES)
      const renameKeys = rng.chance(0.5)
      const out = g.kvs.map((k, i) => {
        if (k === arch) return stringKv('general.architecture', to)
        if (renameKeys && k.name.startsWith(`${old}.`))
          return concat([
            ggufString(`${to}.${k.name.slice(old.length + 1)}`),
            src.subarray(k.start + 8 + enc.encode(k.name).length, k.end),
          ])
        return kvs[i]
      })
      return {
        bytes: rebuild(src, g, out, infos),
        what: `general.architecture "${old}" := "${to}"${renameKeys ? ' (keys renamed)' : ''}`,
      }
    }
    case 'stringValue': {
      // String values the readers branch on (tokenizer model and pre-tokenizer names, the file type...).
      const strings = g.kvs.filter((k) => k.type === 8 && k.name !== 'general.architecture')
      if (strings.length === 0) return mutateBytes(src, rng, g.infosEnd)
      const k = rng.pick(strings)
      const to = rng.chance(0.5)
        ? rng.pick(BUILTIN_NAMES)
        : rng.pick([
            '',
            'gpt2',
            'llama',
            'bert',
            't5',
            'rwkv',
            'no_vocab',
            'default',
            'llama3',
            'qwen2',
            'x'.repeat(300),
          ])
      const out = kvs.slice()
      out[g.kvs.indexOf(k)] = stringKv(k.name, to)
      return { bytes: rebuild(src, g, out, infos), what: `"${k.name}" := "${to.slice(0, 40)}"` }
    }
    case 'keyName': {
      const i = rng.int(kvs.length)
      const k = g.kvs[i]
      const parts = k.name.split('.')
      parts[rng.int(parts.length)] = rng.pick(BUILTIN_NAMES)
      const to = parts.join('.')
      const out = kvs.slice()
      out[i] = concat([ggufString(to), src.subarray(k.start + 8 + enc.encode(k.name).length, k.end)])
      return { bytes: rebuild(src, g, out, infos), what: `key "${k.name}" renamed "${to}"` }
    }
    case 'tensorName': {
      const i = rng.int(infos.length)
      const t = g.tensors[i]
      const parts = t.name.split('.')
      parts[rng.int(parts.length)] = rng.pick(BUILTIN_NAMES)
      const to = rng.chance(0.2) ? g.tensors[rng.int(infos.length)].name : parts.join('.')
      const out = infos.slice()
      out[i] = concat([ggufString(to), src.subarray(t.nameEnd, t.end)])
      return { bytes: rebuild(src, g, kvs, out), what: `tensor "${t.name}" renamed "${to}"` }
    }
    case 'dropKv': {
      const i = rng.int(kvs.length)
      return {
        bytes: rebuild(
          src,
          g,
          kvs.filter((_, j) => j !== i),
          infos,
        ),
        what: `key/value "${g.kvs[i].name}" dropped`,
      }
    }
    case 'duplicateKv': {
      const i = rng.int(kvs.length)
      const out = kvs.slice()
      out.splice(rng.int(kvs.length + 1), 0, kvs[i])
      return { bytes: rebuild(src, g, out, infos), what: `key/value "${g.kvs[i].name}" duplicated` }
    }
    case 'alignment': {
      const a = rng.pick([0, 1, 2, 3, 7, 8, 16, 31, 64, 4096, 0x80000000, 0xffffffff])
      const type = new Uint8Array(8)
      new DataView(type.buffer).setUint32(0, 4, true)
      new DataView(type.buffer).setUint32(4, a, true)
      const kv = concat([ggufString('general.alignment'), type])
      const out = kvs.filter((_, i) => g.kvs[i].name !== 'general.alignment')
      out.splice(rng.int(out.length + 1), 0, kv)
      return { bytes: rebuild(src, g, out, infos), what: `general.alignment := ${a}` }
    }
  }
}
