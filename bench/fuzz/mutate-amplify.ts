// Rare mutations that make an input really large rather than wrong: a safetensors header with more
// tensors than any real model, a GGUF with thousands of key/values or a megabyte of metadata, a
// tokenizer.json over its cap or with a much larger vocabulary. The readers must refuse those above their
// caps at once (typed), and take the ones below in their stride: within the case time limit, without
// gigabytes of memory.

import type { Mutated } from './mutate-bytes'
import type { ParsedGguf } from './mutate-gguf'
import type { Rng } from './prng'

const enc = new TextEncoder()

/** A safetensors file of `n` one-element F32 tensors (valid layout, every range distinct). */
export function manyTensorsSafetensors(rng: Rng): Mutated {
  const n = rng.pick([20_000, (1 << 17) + 1, 300_000])
  const parts: string[] = []
  for (let i = 0; i < n; i++) parts.push(`"t.${i}":{"dtype":"F32","shape":[1],"data_offsets":[${4 * i},${4 * i + 4}]}`)
  const json = enc.encode(`{${parts.join(',')}}`)
  const out = new Uint8Array(8 + json.length + 4 * n)
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true)
  out.set(json, 8)
  return { bytes: out, what: `safetensors header of ${n} tensors (${json.length} bytes)` }
}

/** The GGUF with `n` extra u32 key/values, or one string key/value of over a megabyte, before its tensor infos. */
export function bloatedGguf(src: Uint8Array, g: ParsedGguf, rng: Rng): Mutated {
  const kind = rng.pick(['manyKvs', 'bigString', 'deepArray'] as const)
  const extra: Uint8Array[] = []
  let added = 0
  if (kind === 'manyKvs') {
    added = rng.pick([1000, 4097, 100_000])
    for (let i = 0; i < added; i++) {
      const key = enc.encode(`fuzz.k${i}`)
      const kv = new Uint8Array(8 + key.length + 8)
      const dv = new DataView(kv.buffer)
      dv.setBigUint64(0, BigInt(key.length), true)
      kv.set(key, 8)
      dv.setUint32(8 + key.length, 4, true)
      dv.setUint32(12 + key.length, i, true)
      extra.push(kv)
    }
  } else if (kind === 'deepArray') {
    // An array of arrays of ... nested `depth` deep (12 bytes a level), one u32 at the bottom.
    added = 1
    const depth = rng.pick([9, 1000, 100_000])
    const key = enc.encode('fuzz.deep')
    const kv = new Uint8Array(8 + key.length + 4 + depth * 12 + 4)
    const dv = new DataView(kv.buffer)
    dv.setBigUint64(0, BigInt(key.length), true)
    kv.set(key, 8)
    let at = 8 + key.length
    dv.setUint32(at, 9, true)
    at += 4
    for (let d = 0; d < depth; d++, at += 12) {
      dv.setUint32(at, d === depth - 1 ? 4 : 9, true)
      dv.setBigUint64(at + 4, 1n, true)
    }
    dv.setUint32(at, 7, true)
    extra.push(kv)
  } else {
    added = 1
    const key = enc.encode('general.description')
    const len = rng.pick([(1 << 20) + 1, 3 << 20])
    const kv = new Uint8Array(8 + key.length + 4 + 8 + len).fill(0x61)
    const dv = new DataView(kv.buffer)
    dv.setBigUint64(0, BigInt(key.length), true)
    kv.set(key, 8)
    dv.setUint32(8 + key.length, 8, true)
    dv.setBigUint64(12 + key.length, BigInt(len), true)
    extra.push(kv)
  }
  const kvEnd = g.kvs.length > 0 ? g.kvs[g.kvs.length - 1].end : 24
  const head = [src.subarray(0, 24), src.subarray(24, kvEnd), ...extra, src.subarray(kvEnd, g.infosEnd)]
  const headLength = head.reduce((a, p) => a + p.length, 0)
  const pad = (g.alignment - (headLength % g.alignment)) % g.alignment
  const data = src.subarray(g.dataStart)
  const out = new Uint8Array(headLength + pad + data.length)
  let at = 0
  for (const p of head) {
    out.set(p, at)
    at += p.length
  }
  out.set(data, headLength + pad)
  const dv = new DataView(out.buffer)
  dv.setBigUint64(16, BigInt(g.kvs.length + added), true)
  const what =
    kind === 'manyKvs'
      ? `${added} extra key/values`
      : kind === 'deepArray'
        ? `an array nested ${(extra[0].length - 25) / 12} deep`
        : `a ${extra[0].length}-byte string key/value`
  return { bytes: out, what }
}

/** tokenizer.json over the 50 MB cap (trailing whitespace, which JSON allows), or with ~60k extra vocabulary entries. */
export function bloatedTokenizer(
  src: Uint8Array,
  doc: { model?: { vocab?: Record<string, number> } },
  rng: Rng,
): Mutated {
  if (rng.chance(0.5)) {
    const size = (50 << 20) + 1 + rng.int(1 << 20)
    const out = new Uint8Array(size).fill(0x20)
    out.set(src)
    return { bytes: out, what: `tokenizer.json padded to ${size} bytes` }
  }
  const vocab = { ...(doc.model?.vocab ?? {}) }
  const base = Object.keys(vocab).length
  for (let i = 0; i < 60_000; i++) vocab[`▁fuzz${i}`] = base + i
  const bytes = enc.encode(JSON.stringify({ ...doc, model: { ...doc.model, vocab } }))
  return { bytes, what: `tokenizer.json vocabulary grown by 60000 entries (${bytes.length} bytes)` }
}
