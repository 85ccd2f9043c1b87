// The tokenizer every GGUF carries in its tokenizer.ggml.* metadata, rebuilt the way llama.cpp reads it:
// 'llama' (SentencePiece-style BPE with scores and byte fallback) and 'gpt2' (byte-level BPE with merges).
// Special tokens written in the text are recognised first; the text between them is encoded by the model.

import { WhittleError } from '../errors'
import { readGguf, readGgufArray, type GgufFile } from './gguf'
import { encodeBpeWord, pairKey, preTokenizerFor, splitWords, SUPPORTED_PRE, type BpeVocab } from './gguf-tokenizer-bpe'
import { encodeSpm, spmPrepare, type SpmVocab } from './gguf-tokenizer-spm'

/** llama.cpp's token types (tokenizer.ggml.token_type). */
export const GGUF_TOKEN_TYPE = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const

export const SUPPORTED_TOKENIZER_MODELS = ['llama', 'gpt2'] as const
export type GgufTokenizerModel = (typeof SUPPORTED_TOKENIZER_MODELS)[number]

/** Far above any real vocabulary (the largest are ~256k); a bigger claim is corruption. */
export const MAX_GGUF_VOCAB = 1 << 22
/** Merge lists are about as long as the vocabulary. */
export const MAX_GGUF_MERGES = 1 << 23

/** What tokenizer.ggml.* says, validated, with llama.cpp's defaults filled in. */
export interface GgufVocab {
  file: string
  model: GgufTokenizerModel
  /** tokenizer.ggml.pre, null when absent. */
  pre: string | null
  tokens: string[]
  /** One per token (0 when the file has none). */
  scores: Float32Array
  /** One per token (NORMAL when the file has none). */
  types: Int32Array
  /** 'gpt2' only: [left, right] in rank order. */
  merges: [string, string][]
  bosId: number | null
  eosId: number | null
  unkId: number | null
  padId: number | null
  addBos: boolean
  addEos: boolean
  addSpacePrefix: boolean
}

export interface EncodeOptions {
  /** Add BOS/EOS as add_bos_token/add_eos_token say (default false: the text's ids only). */
  addSpecialTokens?: boolean
  /** Recognise control tokens written in the text, as HF tokenizers do by default (default true). */
  parseSpecial?: boolean
}

export interface GgufTokenizer {
  readonly source: 'gguf'
  readonly vocab: GgufVocab
  encode(text: string, options?: EncodeOptions): number[]
}

function kvOf(g: GgufFile, key: string): unknown {
  return Object.hasOwn(g.metadata, key) ? g.metadata[key] : undefined
}

function boolKv(g: GgufFile, key: string, fallback: boolean): boolean {
  const v = kvOf(g, key)
  if (v === undefined) return fallback
  if (typeof v !== 'boolean') throw new WhittleError('format', g.path, `${key} must be a bool, not a ${g.kvTypes[key]}`)
  return v
}

/** A special token id; llama.cpp keeps its default when the stored id is outside the vocabulary (e.g. 2^32-1). */
function idKv(g: GgufFile, key: string, fallback: number | null, n: number): number | null {
  const v = kvOf(g, key)
  const ok = (x: number | null): x is number => x !== null && Number.isInteger(x) && x >= 0 && x < n
  if (typeof v === 'number' && ok(v)) return v
  if (v !== undefined && typeof v !== 'number' && typeof v !== 'bigint')
    throw new WhittleError('format', g.path, `${key} must be an integer, not a ${g.kvTypes[key]}`)
  return ok(fallback) ? fallback : null
}

async function arrayKv(
  g: GgufFile,
  key: string,
  itemType: string,
  limit: number,
  required: boolean,
): Promise<ArrayLike<unknown> | null> {
  if (!Object.hasOwn(g.kvTypes, key)) {
    if (required) throw new WhittleError('format', g.path, `tokenizer.ggml.model is set but ${key} is missing`)
    return null
  }
  const loc = Object.hasOwn(g.arrays, key) ? g.arrays[key] : undefined
  if (g.kvTypes[key] !== 'array' || !loc)
    throw new WhittleError('format', g.path, `${key} must be an array, not a ${g.kvTypes[key]}`)
  if (loc.itemType !== itemType)
    throw new WhittleError('format', g.path, `${key} must hold ${itemType} items, not ${loc.itemType}`)
  if (loc.length > limit)
    throw new WhittleError('format', g.path, `${key} claims ${loc.length} items; more than ${limit} is not plausible`)
  return (await readGgufArray(g.path, key, g)) as ArrayLike<unknown>
}

/** Reads and validates tokenizer.ggml.* of a GGUF file. Unsupported tokenizer models are refused by name. */
export async function readGgufVocab(path: string, file?: GgufFile): Promise<GgufVocab> {
  const g = file ?? (await readGguf(path))
  const model = kvOf(g, 'tokenizer.ggml.model')
  if (model === undefined)
    throw new WhittleError(
      'not-found',
      g.path,
      'has no tokenizer: no tokenizer.ggml.model metadata (and no tokenizer.json beside it)',
    )
  if (typeof model !== 'string')
    throw new WhittleError(
      'format',
      g.path,
      `tokenizer.ggml.model must be a string, not a ${g.kvTypes['tokenizer.ggml.model']}`,
    )
  if (!(SUPPORTED_TOKENIZER_MODELS as readonly string[]).includes(model)) {
    throw new WhittleError(
      'unsupported',
      g.path,
      `tokenizer model '${model}' is not supported yet (${SUPPORTED_TOKENIZER_MODELS.join(' and ')} are); put a tokenizer.json beside the file to use that instead`,
    )
  }
  const m = model as GgufTokenizerModel
  const rawTokens = (await arrayKv(g, 'tokenizer.ggml.tokens', 'string', MAX_GGUF_VOCAB, true)) as string[]
  const n = rawTokens.length
  if (n === 0) throw new WhittleError('format', g.path, 'tokenizer.ggml.tokens is empty')
  // llama.cpp renames empty tokens so every id keeps a distinct, non-matching text.
  const tokens = Array.from(rawTokens, (t, i) => (t === '' ? `[EMPTY_${i}]` : t))
  const scoresRaw = await arrayKv(g, 'tokenizer.ggml.scores', 'f32', MAX_GGUF_VOCAB, false)
  const typesRaw = await arrayKv(g, 'tokenizer.ggml.token_type', 'i32', MAX_GGUF_VOCAB, false)
  for (const [key, a] of [
    ['tokenizer.ggml.scores', scoresRaw],
    ['tokenizer.ggml.token_type', typesRaw],
  ] as const) {
    if (a && a.length !== n) throw new WhittleError('format', g.path, `${key} has ${a.length} items for ${n} tokens`)
  }
  const scores = scoresRaw ? Float32Array.from(scoresRaw as Float32Array) : new Float32Array(n)
  const types = typesRaw ? Int32Array.from(typesRaw as Int32Array) : new Int32Array(n).fill(GGUF_TOKEN_TYPE.NORMAL)

  let merges: [string, string][] = []
  let pre: string | null = null
  let addBosDefault = true
  if (m === 'gpt2') {
    const preKv = kvOf(g, 'tokenizer.ggml.pre')
    if (preKv !== undefined && typeof preKv !== 'string')
      throw new WhittleError('format', g.path, 'tokenizer.ggml.pre must be a string')
    pre = preKv ?? null
    const family = preTokenizerFor(pre)
    if (!family)
      throw new WhittleError(
        'unsupported',
        g.path,
        `byte-level BPE pre-tokenizer '${pre}' is not supported yet (${SUPPORTED_PRE.join(', ')} are)`,
      )
    addBosDefault = family.addBosDefault
    const list = (await arrayKv(g, 'tokenizer.ggml.merges', 'string', MAX_GGUF_MERGES, true)) as string[]
    merges = list.map((line, rank) => {
      // The separator is the first space after the first character (a left part may itself be a space).
      const cut = line.indexOf(' ', 1)
      if (cut < 0)
        throw new WhittleError(
          'format',
          g.path,
          `tokenizer.ggml.merges[${rank}] ${JSON.stringify(line)} is not "left right"`,
        )
      return [line.slice(0, cut), line.slice(cut + 1)]
    })
  }
  const spm = m === 'llama'
  return {
    file: g.path,
    model: m,
    pre,
    tokens,
    scores,
    types,
    merges,
    bosId: idKv(g, 'tokenizer.ggml.bos_token_id', spm ? 1 : 11, n),
    eosId: idKv(g, 'tokenizer.ggml.eos_token_id', spm ? 2 : 11, n),
    unkId: idKv(g, 'tokenizer.ggml.unknown_token_id', spm ? 0 : null, n),
    padId: idKv(g, 'tokenizer.ggml.padding_token_id', null, n),
    addBos: boolKv(g, 'tokenizer.ggml.add_bos_token', addBosDefault),
    addEos: boolKv(g, 'tokenizer.ggml.add_eos_token', false),
    addSpacePrefix: boolKv(g, 'tokenizer.ggml.add_space_prefix', spm),
  }
}

type Fragment = string | number

/**
 * Cuts the text at special tokens, longest first, as llama.cpp does: control and unknown tokens when
 * parseSpecial, user-defined ones always. Strings are raw text, numbers token ids.
 */
function partition(
  text: string,
  specials: { text: string; id: number; control: boolean }[],
  parseSpecial: boolean,
): Fragment[] {
  let fragments: Fragment[] = [text]
  // Vocabularies carry thousands of reserved control tokens; a token with a pair of adjacent characters
  // the text lacks cannot occur in it, which spares a scan of the text per such token.
  const pairs = adjacentPairs(text)
  for (const s of specials) {
    if (s.control && !parseSpecial) continue
    if (!mayOccur(s.text, pairs)) continue
    const next: Fragment[] = []
    for (const f of fragments) {
      if (typeof f === 'number') {
        next.push(f)
        continue
      }
      let from = 0
      for (let at = f.indexOf(s.text); at >= 0; at = f.indexOf(s.text, from)) {
        if (at > from) next.push(f.slice(from, at))
        next.push(s.id)
        from = at + s.text.length
      }
      if (from < f.length) next.push(from === 0 ? f : f.slice(from))
    }
    fragments = next
  }
  return fragments
}

/** Every pair of adjacent UTF-16 code units in `text`, and every single unit (paired with 0xffff). */
function adjacentPairs(text: string): Set<number> {
  const pairs = new Set<number>()
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    pairs.add(c * 0x10000 + 0xffff)
    if (i + 1 < text.length) pairs.add(c * 0x10000 + text.charCodeAt(i + 1))
  }
  return pairs
}

function mayOccur(token: string, pairs: Set<number>): boolean {
  if (token.length === 1) return pairs.has(token.charCodeAt(0) * 0x10000 + 0xffff)
  for (let i = 0; i + 1 < token.length; i++)
    if (!pairs.has(token.charCodeAt(i) * 0x10000 + token.charCodeAt(i + 1))) return false
  return true
}

/** Builds the tokenizer of a GGUF file from its metadata. */
export async function loadGgufTokenizer(path: string, file?: GgufFile): Promise<GgufTokenizer> {
  return ggufTokenizerFromVocab(await readGgufVocab(path, file))
}

export function ggufTokenizerFromVocab(vocab: GgufVocab): GgufTokenizer {
  const ids = new Map<string, number>()
  vocab.tokens.forEach((t, i) => ids.set(t, i))
  const specials = vocab.tokens
    .map((text, id) => ({ text, id, type: vocab.types[id] }))
    .filter(
      (s) =>
        s.type === GGUF_TOKEN_TYPE.CONTROL ||
        s.type === GGUF_TOKEN_TYPE.UNKNOWN ||
        s.type === GGUF_TOKEN_TYPE.USER_DEFINED,
    )
    .map((s) => ({ text: s.text, id: s.id, control: s.type !== GGUF_TOKEN_TYPE.USER_DEFINED }))
    .sort((a, b) => b.text.length - a.text.length || a.id - b.id)
  const unrepresentable = (ch: string): never => {
    const cp = ch.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')
    throw new WhittleError(
      'validation',
      vocab.file,
      `the text holds U+${cp}, which this tokenizer has no token, byte token or unknown token for`,
    )
  }

  let encodeRaw: (raw: string, afterSpecial: boolean, out: number[]) => void
  if (vocab.model === 'llama') {
    const byteIds = new Int32Array(256).fill(-1)
    for (let b = 0; b < 256; b++) byteIds[b] = ids.get(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`) ?? -1
    const spm: SpmVocab = { ids, scores: vocab.scores, byteIds, unkId: vocab.unkId }
    // The leading space goes in front of the text and of every run that follows a special token.
    encodeRaw = (raw, afterSpecial, out) =>
      encodeSpm(spmPrepare(raw, vocab.addSpacePrefix && afterSpecial), spm, out, unrepresentable)
  } else {
    const family = preTokenizerFor(vocab.pre)!
    const patterns = family.patterns.map((p) => new RegExp(p, 'gu'))
    const ranks = new Map<string, number>()
    vocab.merges.forEach(([l, r], rank) => {
      const key = pairKey(l, r)
      if (!ranks.has(key)) ranks.set(key, rank)
    })
    const bpe: BpeVocab = { ids, ranks, unkId: vocab.unkId }
    // Words repeat a lot in real text; remember their ids (bounded, so a huge text cannot grow it forever).
    const cache = new Map<string, number[]>()
    encodeRaw = (raw, _afterSpecial, out) => {
      for (const word of splitWords(raw, patterns)) {
        let wordIds = cache.get(word)
        if (!wordIds) {
          wordIds = []
          encodeBpeWord(word, bpe, family.ignoreMerges, wordIds, unrepresentable)
          if (cache.size >= 100_000) cache.clear()
          cache.set(word, wordIds)
        }
        for (const id of wordIds) out.push(id)
      }
    }
  }

  return {
    source: 'gguf',
    vocab,
    encode(text, options = {}) {
      const out: number[] = []
      if (options.addSpecialTokens && vocab.addBos && vocab.bosId !== null) out.push(vocab.bosId)
      let afterSpecial = true
      for (const f of partition(text, specials, options.parseSpecial ?? true)) {
        if (typeof f === 'number') {
          out.push(f)
          afterSpecial = true
        } else if (f.length > 0) {
          // An empty text has no tokens at all (no leading ▁ either), as in llama.cpp and HF.
          encodeRaw(f, afterSpecial, out)
          afterSpecial = false
        }
      }
      if (options.addSpecialTokens && vocab.addEos && vocab.eosId !== null) out.push(vocab.eosId)
      return out
    },
  }
}
