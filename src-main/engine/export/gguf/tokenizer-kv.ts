// Converts a Hugging Face tokenizer.json into llama.cpp's tokenizer.ggml.* metadata, or copies those keys
// from a GGUF source. A BPE model with byte fallback (and the ▁ word marker) is SentencePiece-style and
// becomes tokenizer.ggml.model = 'llama'; a plain byte-level BPE becomes 'gpt2' with its merges.

import { readFile, stat } from 'node:fs/promises'
import path from 'node:path'
import { WhittleError } from '../../errors'
import type { GgufKv } from '../../formats/gguf-writer'
import { readGguf, readGgufArray } from '../../formats/gguf'
import { MAX_TOKENIZER_JSON_BYTES } from '../../formats/limits'
import type { GgufScalarType } from '../../formats/gguf-writer'
import type { ModelFiles } from '../../formats/types'

/** llama.cpp's token types (llama_token_type). */
export const TOKEN_TYPE = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const

/** Tokenizer files past this size are not tokenizers: refuse them instead of parsing them into memory (limits.ts). */
const MAX_TOKENIZER_BYTES = MAX_TOKENIZER_JSON_BYTES

async function readJson(file: string): Promise<Record<string, unknown> | null> {
  const info = await stat(file).catch(() => null)
  if (!info) return null
  if (info.size > MAX_TOKENIZER_BYTES)
    throw new WhittleError('format', file, `${info.size} bytes is too large for a tokenizer file`)
  try {
    const v: unknown = JSON.parse(await readFile(file, 'utf8'))
    if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error('not a JSON object')
    return v as Record<string, unknown>
  } catch (e) {
    throw new WhittleError('format', file, `invalid JSON (${(e as Error).message})`)
  }
}

function tokenContent(v: unknown): string | null {
  if (typeof v === 'string') return v
  if (v && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string')
    return (v as { content: string }).content
  return null
}

function asObject(v: unknown): Record<string, unknown> | null {
  return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null
}

/**
 * tokenizer.* KVs from tokenizer.json (+ tokenizer_config.json, config.json), for a vocabulary of
 * `vocabSize` rows (the embedding's real size bounds every array written). [] when there is no tokenizer.
 */
export async function tokenizerKvsFromHf(model: ModelFiles, vocabSize: number): Promise<GgufKv[]> {
  const file = model.tokenizerPath
  if (!file) return []
  const json = await readJson(file)
  const bpe = asObject(json?.model)
  if (!json || !bpe) throw new WhittleError('format', file, 'no "model" object')
  if (bpe.type !== 'BPE')
    throw new WhittleError(
      'unsupported',
      file,
      `tokenizer model ${String(bpe.type)} cannot be converted to GGUF yet (BPE can)`,
    )
  const vocab = asObject(bpe.vocab)
  if (!vocab) throw new WhittleError('format', file, 'model.vocab is not an object')

  const tokens: (string | null)[] = new Array<string | null>(vocabSize).fill(null)
  const place = (token: string, id: unknown): void => {
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0)
      throw new WhittleError('format', file, `token ${JSON.stringify(token)} has invalid id ${String(id)}`)
    if (id >= vocabSize)
      throw new WhittleError('config', file, `token id ${id} is outside the model's vocabulary of ${vocabSize}`)
    tokens[id] = token
  }
  for (const [token, id] of Object.entries(vocab)) place(token, id)
  const added = Array.isArray(json.added_tokens)
    ? json.added_tokens.map(asObject).filter((a): a is Record<string, unknown> => a !== null)
    : []
  const special = new Set<number>()
  const userDefined = new Set<number>()
  for (const a of added) {
    if (typeof a.content !== 'string') continue
    place(a.content, a.id)
    ;(a.special === true ? special : userDefined).add(a.id as number)
  }

  const sentencePiece = bpe.byte_fallback === true
  const unk = typeof bpe.unk_token === 'string' ? bpe.unk_token : null
  const types = new Int32Array(vocabSize)
  const scores = new Float32Array(vocabSize)
  const strings: string[] = []
  let normalRank = 0
  for (let id = 0; id < vocabSize; id++) {
    const token = tokens[id]
    if (token === null) {
      // llama.cpp's converter pads a vocabulary shorter than the embedding the same way.
      strings.push(`[PAD${id}]`)
      types[id] = TOKEN_TYPE.UNUSED
      continue
    }
    strings.push(token)
    if (token === unk) types[id] = TOKEN_TYPE.UNKNOWN
    else if (special.has(id)) types[id] = TOKEN_TYPE.CONTROL
    else if (userDefined.has(id)) types[id] = TOKEN_TYPE.USER_DEFINED
    else if (sentencePiece && /^<0x[0-9A-F]{2}>$/.test(token)) types[id] = TOKEN_TYPE.BYTE
    else {
      types[id] = TOKEN_TYPE.NORMAL
      // tokenizer.json keeps no scores; a BPE vocabulary is ordered by merge priority, which SentencePiece
      // expresses as descending scores, so each normal token scores minus its rank.
      scores[id] = -normalRank++
    }
  }

  const dir = path.dirname(file)
  const tokConfig = await readJson(path.join(dir, 'tokenizer_config.json'))
  const idOf = (name: string | null): number | null => {
    if (name === null) return null
    const id = tokens.indexOf(name)
    return id >= 0 ? id : null
  }
  const configId = (key: string): number | null => {
    const v = model.config?.[key]
    return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v < vocabSize ? v : null
  }
  const bos = idOf(tokenContent(tokConfig?.bos_token)) ?? configId('bos_token_id')
  const eos = idOf(tokenContent(tokConfig?.eos_token)) ?? configId('eos_token_id')
  const pad = idOf(tokenContent(tokConfig?.pad_token)) ?? configId('pad_token_id')
  const unkId = idOf(unk)

  const kv: GgufKv[] = [
    { key: 'tokenizer.ggml.model', type: 'string', value: sentencePiece ? 'llama' : 'gpt2' },
    { key: 'tokenizer.ggml.tokens', type: 'array', itemType: 'string', value: strings },
  ]
  if (sentencePiece) kv.push({ key: 'tokenizer.ggml.scores', type: 'array', itemType: 'f32', value: scores })
  kv.push({ key: 'tokenizer.ggml.token_type', type: 'array', itemType: 'i32', value: types })
  if (!sentencePiece) {
    const merges = Array.isArray(bpe.merges) ? bpe.merges : []
    const asText = merges.map((m) => (Array.isArray(m) ? m.join(' ') : String(m)))
    kv.push({ key: 'tokenizer.ggml.merges', type: 'array', itemType: 'string', value: asText })
  }
  const ids: [string, number | null][] = [
    ['bos_token_id', bos],
    ['eos_token_id', eos],
    ['unknown_token_id', unkId],
    ['padding_token_id', pad],
  ]
  for (const [key, id] of ids) if (id !== null) kv.push({ key: `tokenizer.ggml.${key}`, type: 'u32', value: id })
  for (const key of ['add_bos_token', 'add_eos_token']) {
    const v = tokConfig?.[key]
    if (typeof v === 'boolean') kv.push({ key: `tokenizer.ggml.${key}`, type: 'bool', value: v })
  }
  return kv
}

/** tokenizer.* KVs of a GGUF source, copied with their value types. */
export async function tokenizerKvsFromGguf(file: string): Promise<GgufKv[]> {
  const g = await readGguf(file)
  const kv: GgufKv[] = []
  for (const [key, type] of Object.entries(g.kvTypes)) {
    if (!key.startsWith('tokenizer.')) continue
    if (type === 'array') {
      const loc = g.arrays[key]
      if (!loc || loc.itemType === 'array') continue // nested arrays: llama.cpp's tokenizers use none
      const items = await readGgufArray(file, key, g)
      kv.push({
        key,
        type: 'array',
        itemType: loc.itemType as GgufScalarType,
        value: items as ArrayLike<string | number | bigint | boolean>,
      })
    } else {
      kv.push({ key, type, value: g.metadata[key] as string | number | bigint | boolean })
    }
  }
  return kv
}
