// Structure-aware mutations of JSON documents (config.json, tokenizer.json, safetensors headers, sharded
// indexes): values swapped for boundary numbers, wrong types and JavaScript built-in names, keys renamed,
// removed or duplicated, invalid UTF-8 and non-JSON number tokens spliced into the text.

import type { Rng } from './prng'

type Json = null | boolean | number | string | Json[] | { [k: string]: Json }
export type JsonPath = (string | number)[]

/** Names that exist on every plain object or function: lookups keyed by file content must not find them. */
export const BUILTIN_NAMES = [
  '__proto__',
  'constructor',
  'toString',
  'hasOwnProperty',
  'valueOf',
  'prototype',
  'isPrototypeOf',
  '__defineGetter__',
  'toLocaleString',
  'propertyIsEnumerable',
  'length',
  'name',
  'call',
  'then',
]

const INTERESTING_NUMBERS = [
  0,
  -0,
  1,
  -1,
  2,
  3,
  7,
  8,
  31,
  32,
  33,
  63,
  64,
  127,
  128,
  255,
  256,
  1023,
  1024,
  4095,
  65535,
  65536,
  0x7fffffff,
  0x80000000,
  0xffffffff,
  2 ** 32,
  2 ** 40,
  2 ** 53 - 1,
  2 ** 53,
  2 ** 53 + 2,
  2 ** 63,
  2 ** 64,
  1e21,
  1e300,
  -1e300,
  -(2 ** 31),
  -(2 ** 53),
  0.5,
  1.5,
  -0.5,
  1e-320,
  3.14,
]

/** Tokens JSON does not allow but some writers emit (NaN, Infinity) and one that overflows to Infinity. */
const NON_JSON_NUMBERS = ['NaN', 'Infinity', '-Infinity', '1e999', '-1e999', '0x10', '01', '1.', '.5', '+1']

function interestingString(rng: Rng): string {
  switch (rng.int(6)) {
    case 0:
    case 1:
    case 2:
      return rng.pick(BUILTIN_NAMES)
    case 3:
      return rng.pick([
        '',
        ' ',
        '\u0000',
        '\ud800',
        '..',
        '../x',
        'model.layers.0.constructor.weight',
        'F32',
        'I32',
        'U8',
        'F16',
        'Q4_K',
        'gptq',
        'llama',
        'LlamaForCausalLM',
      ])
    case 4:
      return 'x'.repeat(rng.pick([1, 100, 5000]))
    default:
      return `${rng.pick(BUILTIN_NAMES)}.weight`
  }
}

/** A replacement value of any JSON type, biased towards the ones parsers trip over. */
export function interestingValue(rng: Rng, like?: Json): Json {
  switch (rng.int(9)) {
    case 0:
    case 1:
    case 2:
      return rng.pick(INTERESTING_NUMBERS)
    case 3:
    case 4:
      return interestingString(rng)
    case 5:
      return rng.pick([null, true, false])
    case 6:
      return rng.pick<Json>([[], {}, [[]], [null], [-1], [2 ** 64], ['constructor'], { constructor: 1 }])
    case 7: {
      if (typeof like === 'number')
        return rng.pick([like + 1, like - 1, -like, like * 2, like * 1024, like / 2, Math.floor(like / 2) + 0.5])
      if (Array.isArray(like)) return like.length > 0 ? [...like, ...like] : [0]
      return interestingString(rng)
    }
    default:
      // Deep nesting: recursive walkers (and String(), JSON.stringify in messages) must not overflow the
      // stack. JSON.parse takes 10^5 levels; the text is spliced in after serialization (deepen()).
      return `${DEEP}${rng.pick([10, 1000, 4000, 100_000])}`
  }
}

/** Placeholder for an array nested N deep, expanded in the serialized text. */
const DEEP = '\u0000deep:'

/** Replaces each placeholder string with its nested array text. */
function deepen(text: string): string {
  return text.replace(/"\\u0000deep:(\d+)"/g, (_, n: string) => `${'['.repeat(Number(n))}0${']'.repeat(Number(n))}`)
}

/** Every path in the document (objects' keys and arrays' elements), up to `limit` of them. */
export function allPaths(doc: Json, limit = 20000): JsonPath[] {
  const out: JsonPath[] = []
  const walk = (v: Json, p: JsonPath): void => {
    if (out.length >= limit) return
    out.push(p)
    if (Array.isArray(v)) {
      // Large arrays (vocabularies, merges): a sample of elements is enough.
      const step = Math.max(1, Math.floor(v.length / 64))
      for (let i = 0; i < v.length; i += step) walk(v[i], [...p, i])
    } else if (v && typeof v === 'object') {
      const keys = Object.keys(v)
      const step = Math.max(1, Math.floor(keys.length / 64))
      for (let i = 0; i < keys.length; i += step) walk(v[keys[i]], [...p, keys[i]])
    }
  }
  walk(doc, [])
  return out
}

export function getAt(doc: Json, p: JsonPath): Json {
  let v: Json = doc
  for (const k of p) v = (v as Record<string, Json>)[k as string]
  return v
}

/** Sets an own property even when the key is "__proto__" (plain assignment would change the prototype). */
function setOwn(o: Record<string, Json>, k: string, v: Json): void {
  Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true })
}

/** Returns a copy of `doc` with the value at `p` replaced by `f(old)` (f may return undefined to delete it). */
export function updateAt(doc: Json, p: JsonPath, f: (old: Json) => Json | undefined): Json {
  if (p.length === 0) return f(doc) ?? null
  const [k, ...rest] = p
  if (Array.isArray(doc)) {
    const copy = doc.slice()
    const i = k as number
    if (rest.length > 0) copy[i] = updateAt(copy[i], rest, f)
    else {
      const nv = f(copy[i])
      if (nv === undefined) copy.splice(i, 1)
      else copy[i] = nv
    }
    return copy
  }
  const obj = doc as Record<string, Json>
  const copy: Record<string, Json> = {}
  for (const key of Object.keys(obj)) {
    if (key !== k) setOwn(copy, key, obj[key])
    else if (rest.length > 0) setOwn(copy, key, updateAt(obj[key], rest, f))
    else {
      const nv = f(obj[key])
      if (nv !== undefined) setOwn(copy, key, nv)
    }
  }
  return copy
}

/** Renames the key at the end of `p` (keeping its place in the object). */
function renameAt(doc: Json, p: JsonPath, to: string): Json {
  const parent = p.slice(0, -1),
    key = p[p.length - 1]
  return updateAt(doc, parent, (o) => {
    if (!o || typeof o !== 'object' || Array.isArray(o)) return o
    const copy: Record<string, Json> = {}
    for (const k of Object.keys(o)) setOwn(copy, k === key ? to : k, o[k])
    return copy
  })
}

export interface JsonMutation {
  text: string
  what: string
  /** The path the structural part of the mutation changed. */
  path?: JsonPath
}

/** Splices text-level faults into serialized JSON: duplicate keys, bad number tokens, invalid UTF-8 markers. */
function textMutation(text: string, rng: Rng): JsonMutation {
  const kind = rng.weighted({ duplicateKey: 3, badNumber: 3, truncate: 1, strayComma: 1 })
  if (kind === 'duplicateKey') {
    const keys = [...text.matchAll(/"((?:[^"\\]|\\.)*)":/g)]
    if (keys.length === 0) return { text: text + ' ', what: 'trailing space' }
    const m = rng.pick(keys)
    const dup = `"${m[1]}":${JSON.stringify(interestingValue(rng))},`
    return { text: text.slice(0, m.index) + dup + text.slice(m.index), what: `duplicate key "${m[1]}"` }
  }
  if (kind === 'badNumber') {
    const nums = [...text.matchAll(/(?<=[:,[])-?\d[\d.eE+-]*/g)]
    if (nums.length === 0) return { text, what: 'unchanged (no numbers)' }
    const m = rng.pick(nums)
    const tok = rng.pick(NON_JSON_NUMBERS)
    return { text: text.slice(0, m.index) + tok + text.slice(m.index! + m[0].length), what: `number ${m[0]} := ${tok}` }
  }
  if (kind === 'truncate') {
    const at = rng.int(text.length)
    return { text: text.slice(0, at), what: `JSON text cut at ${at}` }
  }
  const at = rng.int(text.length)
  return { text: text.slice(0, at) + ',' + text.slice(at), what: `comma inserted at ${at}` }
}

export interface JsonMutateOptions {
  /** Paths to aim at (a path is chosen among these most of the time when any exist). */
  focus?: (p: JsonPath) => boolean
  /** Values that fit the focused fields (dtype names, etc.), tried alongside the generic ones. */
  values?: (p: JsonPath, old: Json, rng: Rng) => Json | undefined
}

/** One structural mutation of `doc`, serialized. */
export function mutateJson(doc: Json, rng: Rng, options: JsonMutateOptions = {}): JsonMutation {
  const paths = allPaths(doc)
  const focused = options.focus ? paths.filter(options.focus) : []
  const p = focused.length > 0 && rng.chance(0.8) ? rng.pick(focused) : rng.pick(paths)
  const where = JSON.stringify(p)
  const kind = rng.weighted({ replace: 6, builtinKey: 2, remove: 2, wrap: 1, text: 3 })
  let out: Json = doc
  let what = ''
  if (kind === 'replace' || p.length === 0) {
    const special = options.values?.(p, getAt(doc, p), rng)
    const v = special !== undefined && rng.chance(0.6) ? special : interestingValue(rng, getAt(doc, p))
    out = updateAt(doc, p, () => v)
    what = `${where} := ${JSON.stringify(v)?.slice(0, 80)}`
  } else if (kind === 'builtinKey' && typeof p[p.length - 1] === 'string') {
    const to = rng.pick(BUILTIN_NAMES)
    out = renameAt(doc, p, rng.chance(0.5) ? to : String(p[p.length - 1]).replace(/[^.]+/, to))
    what = `key ${where} renamed around "${to}"`
  } else if (kind === 'remove') {
    out = updateAt(doc, p, () => undefined)
    what = `${where} removed`
  } else if (kind === 'wrap') {
    out = updateAt(doc, p, (old) => (rng.chance(0.5) ? [old] : { value: old }))
    what = `${where} wrapped`
  } else {
    const t = textMutation(JSON.stringify(doc), rng)
    return t
  }
  const text = deepen(JSON.stringify(out))
  if (rng.chance(0.1)) {
    const t = textMutation(text, rng)
    return { text: t.text, what: `${what}; ${t.what}`, path: p }
  }
  return { text, what, path: p }
}

const utf8 = new TextEncoder()

/** Encodes mutated JSON text, sometimes with invalid UTF-8 inside a string literal. */
export function encodeJsonText(m: JsonMutation, rng: Rng): { bytes: Uint8Array; what: string } {
  const bytes = utf8.encode(m.text)
  if (!rng.chance(0.08)) return { bytes, what: m.what }
  const quotes: number[] = []
  for (let i = 0; i < bytes.length && quotes.length < 4096; i++) if (bytes[i] === 0x22) quotes.push(i)
  if (quotes.length === 0) return { bytes, what: m.what }
  const at = rng.pick(quotes) + 1
  const bad = rng.pick([[0xff], [0xc0, 0xae], [0xed, 0xa0, 0x80], [0xe0, 0xa4], [0xf8, 0x88, 0x80, 0x80, 0x80], [0x80]])
  const out = new Uint8Array(bytes.length + bad.length)
  out.set(bytes.subarray(0, at))
  out.set(bad, at)
  out.set(bytes.subarray(at), at + bad.length)
  return { bytes: out, what: `${m.what}; invalid UTF-8 ${bad.map((b) => b.toString(16)).join(' ')} at ${at}` }
}
