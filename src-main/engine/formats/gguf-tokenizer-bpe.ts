// Byte-level BPE (tokenizer.ggml.model = 'gpt2'): the text is cut into words by the pre-tokenizer
// regexes that tokenizer.ggml.pre names, each word's UTF-8 bytes are spelt with GPT-2's byte-to-unicode
// alphabet, and adjacent symbols are merged by the rank of their pair in tokenizer.ggml.merges (lowest
// rank first, leftmost on ties).

import { MergeQueue } from './merge-queue'

/**
 * GPT-2's printable stand-ins for the 256 byte values: printable Latin-1 bytes stand for themselves, the
 * rest (controls, space, DEL, NBSP, soft hyphen) take code points from U+0100 upwards in byte order.
 */
export const BYTE_TO_UNICODE: readonly string[] = (() => {
  const out = new Array<string>(256)
  let extra = 0
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff)
    out[b] = String.fromCodePoint(printable ? b : 256 + extra++)
  }
  return out
})()

const GPT2_WORDS = String.raw`'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)`
const LLAMA3_WORDS = String.raw`(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
const QWEN2_WORDS = String.raw`(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`

export interface PreTokenizer {
  /** Applied in turn: each splits every piece so far into its matches and the gaps between them. */
  patterns: string[]
  /** A word that is itself a token is taken whole, merges or not (llama3's tokenizers). */
  ignoreMerges: boolean
  /** llama.cpp's add_bos default for this family when tokenizer.ggml.add_bos_token is absent. */
  addBosDefault: boolean
}

/** The tokenizer.ggml.pre values covered, by the pre-tokenizer llama.cpp gives them. */
const PRE_TOKENIZERS: Record<string, PreTokenizer> = {
  // llama.cpp's fallback for 'default' or a missing key: punctuation runs, GPT-2 words, digit runs, triples.
  default: {
    patterns: [String.raw`[\p{P}\$\+<=>\^~\|]+`, GPT2_WORDS, String.raw`\p{N}+`, '[0-9][0-9][0-9]'],
    ignoreMerges: false,
    addBosDefault: false,
  },
  'gpt-2': { patterns: [GPT2_WORDS], ignoreMerges: false, addBosDefault: false },
  'phi-2': { patterns: [GPT2_WORDS], ignoreMerges: false, addBosDefault: false },
  llama3: { patterns: [LLAMA3_WORDS], ignoreMerges: true, addBosDefault: true },
  'llama-v3': { patterns: [LLAMA3_WORDS], ignoreMerges: true, addBosDefault: true },
  'llama-bpe': { patterns: [LLAMA3_WORDS], ignoreMerges: true, addBosDefault: true },
  falcon3: { patterns: [LLAMA3_WORDS], ignoreMerges: true, addBosDefault: true },
  'smaug-bpe': { patterns: [LLAMA3_WORDS], ignoreMerges: false, addBosDefault: false },
  dbrx: { patterns: [LLAMA3_WORDS], ignoreMerges: false, addBosDefault: false },
  qwen2: { patterns: [QWEN2_WORDS], ignoreMerges: false, addBosDefault: false },
}

export const SUPPORTED_PRE = Object.keys(PRE_TOKENIZERS)

/** The pre-tokenizer for a tokenizer.ggml.pre value (null = absent), or null when it is not covered. */
export function preTokenizerFor(pre: string | null): PreTokenizer | null {
  return Object.hasOwn(PRE_TOKENIZERS, pre ?? 'default') ? PRE_TOKENIZERS[pre ?? 'default'] : null
}

/** Cuts `text` into words: every pattern in turn splits each piece into matches and unmatched gaps. */
export function splitWords(text: string, patterns: readonly RegExp[]): string[] {
  let pieces = [text]
  for (const re of patterns) {
    const next: string[] = []
    for (const piece of pieces) {
      let last = 0
      re.lastIndex = 0
      for (let m = re.exec(piece); m !== null; m = re.exec(piece)) {
        if (m[0].length === 0) {
          re.lastIndex++
          continue
        }
        if (m.index > last) next.push(piece.slice(last, m.index))
        next.push(m[0])
        last = m.index + m[0].length
      }
      if (last < piece.length) next.push(piece.slice(last))
    }
    pieces = next
  }
  return pieces
}

export interface BpeVocab {
  ids: Map<string, number>
  /** Merge rank by pair, keyed with pairKey. */
  ranks: Map<string, number>
  unkId: number | null
}

/** An unambiguous key for a pair of symbols, whatever characters they hold. */
export function pairKey(left: string, right: string): string {
  return `${left.length}:${left}${right}`
}

const utf8 = new TextEncoder()

/** A word's UTF-8 bytes in GPT-2's byte alphabet. */
export function byteLevel(word: string): string {
  let s = ''
  for (const b of utf8.encode(word)) s += BYTE_TO_UNICODE[b]
  return s
}

/**
 * Appends the ids of one pre-tokenized word to `out`. `unrepresentable` is called with a symbol that no
 * token and no unknown token can express; it must throw.
 */
export function encodeBpeWord(
  word: string,
  vocab: BpeVocab,
  ignoreMerges: boolean,
  out: number[],
  unrepresentable: (s: string) => never,
): void {
  const spelt = byteLevel(word)
  const whole = vocab.ids.get(spelt)
  if (ignoreMerges && whole !== undefined) {
    out.push(whole)
    return
  }
  const symbols = Array.from(spelt)
  const n = symbols.length
  const prev = Int32Array.from({ length: n }, (_, i) => i - 1)
  const next = Int32Array.from({ length: n }, (_, i) => (i + 1 < n ? i + 1 : -1))
  const queue = new MergeQueue()
  const tryPair = (left: number, right: number): void => {
    if (left < 0 || right < 0) return
    const rank = vocab.ranks.get(pairKey(symbols[left], symbols[right]))
    if (rank !== undefined)
      queue.push({ priority: rank, left, right, length: symbols[left].length + symbols[right].length })
  }
  for (let i = 1; i < n; i++) tryPair(i - 1, i)
  for (let c = queue.pop(); c !== undefined; c = queue.pop()) {
    const { left, right } = c
    if (
      symbols[left] === '' ||
      symbols[right] === '' ||
      next[left] !== right ||
      symbols[left].length + symbols[right].length !== c.length
    )
      continue
    symbols[left] += symbols[right]
    symbols[right] = ''
    next[left] = next[right]
    if (next[right] >= 0) prev[next[right]] = left
    tryPair(prev[left], left)
    tryPair(left, next[left])
  }
  for (let i = 0; i >= 0 && n > 0; i = next[i]) {
    const id = vocab.ids.get(symbols[i])
    if (id !== undefined) {
      out.push(id)
      continue
    }
    // A merge whose result is missing from the vocabulary: fall back to its characters.
    for (const ch of symbols[i]) {
      const single = vocab.ids.get(ch) ?? vocab.unkId
      if (single === null) unrepresentable(ch)
      out.push(single)
    }
  }
}
