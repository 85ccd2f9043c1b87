// tokenizer.ggml.* → a Hugging Face tokenizer.json and tokenizer_config.json (the reverse of tokenizer-kv.ts).
// 'llama' (SentencePiece-style) becomes a BPE model with byte fallback: the merges are derived from the
// scores the way HF's SentencePiece converters do (every split of a token into two vocabulary tokens is a
// merge, ranked by the token's score), with the ▁ normalizer and the matching decoder. 'gpt2' becomes a
// ByteLevel BPE with the GGUF's own merges and the pre-tokenizer regexes its tokenizer.ggml.pre names.

import { WhittleError } from '../../errors'
import { GGUF_TOKEN_TYPE, type GgufVocab } from '../../formats/gguf-tokenizer'
import { preTokenizerFor } from '../../formats/gguf-tokenizer-bpe'
import { SPM_SPACE } from '../../formats/gguf-tokenizer-spm'

type Json = Record<string, unknown>

/** Token text → id; like llama.cpp, a text that repeats keeps its last id. */
function vocabMap(v: GgufVocab): Map<string, number> {
  const m = new Map<string, number>()
  v.tokens.forEach((t, i) => m.set(t, i))
  return m
}

/**
 * Merges implied by a scored vocabulary: for every token, each cut into a left and right part that are
 * both tokens (in code points; ordered by the parts' ids), all ranked by the token's score, highest first,
 * ties in id order.
 */
export function mergesFromScores(v: GgufVocab): [string, string][] {
  const ids = vocabMap(v)
  const found: { left: string; right: string; score: number; order: number }[] = []
  v.tokens.forEach((token, id) => {
    const chars = Array.from(token)
    const local: { left: string; right: string }[] = []
    for (let k = 1; k < chars.length; k++) {
      const left = chars.slice(0, k).join('')
      const right = chars.slice(k).join('')
      if (ids.has(left) && ids.has(right)) local.push({ left, right })
    }
    local.sort((a, b) => ids.get(a.left)! - ids.get(b.left)! || ids.get(a.right)! - ids.get(b.right)!)
    for (const m of local) found.push({ ...m, score: v.scores[id], order: found.length })
  })
  found.sort((a, b) => b.score - a.score || a.order - b.order)
  return found.map((m) => [m.left, m.right])
}

function addedTokens(v: GgufVocab): Json[] {
  const out: Json[] = []
  v.types.forEach((type, id) => {
    const special = type === GGUF_TOKEN_TYPE.CONTROL || type === GGUF_TOKEN_TYPE.UNKNOWN
    if (!special && type !== GGUF_TOKEN_TYPE.USER_DEFINED) return
    out.push({
      id,
      content: v.tokens[id],
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special,
    })
  })
  return out
}

function postProcessor(v: GgufVocab): Json | null {
  const bos = v.addBos && v.bosId !== null ? v.tokens[v.bosId] : null
  const eos = v.addEos && v.eosId !== null ? v.tokens[v.eosId] : null
  if (bos === null && eos === null) return null
  const special = (token: string | null, typeId: number): Json[] =>
    token === null ? [] : [{ SpecialToken: { id: token, type_id: typeId } }]
  const sequence = (id: string, typeId: number): Json => ({ Sequence: { id, type_id: typeId } })
  const specialTokens: Json = {}
  for (const [token, id] of [
    [bos, v.bosId],
    [eos, v.eosId],
  ] as const) {
    if (token !== null) specialTokens[token] = { id: token, ids: [id], tokens: [token] }
  }
  return {
    type: 'TemplateProcessing',
    single: [...special(bos, 0), sequence('A', 0), ...special(eos, 0)],
    pair: [
      ...special(bos, 0),
      sequence('A', 0),
      ...special(eos, 0),
      ...special(bos, 1),
      sequence('B', 1),
      ...special(eos, 1),
    ],
    special_tokens: specialTokens,
  }
}

function spmParts(v: GgufVocab): Json {
  const replaceSpace = { type: 'Replace', pattern: { String: ' ' }, content: SPM_SPACE }
  const decoders: Json[] = [
    { type: 'Replace', pattern: { String: SPM_SPACE }, content: ' ' },
    { type: 'ByteFallback' },
    { type: 'Fuse' },
  ]
  if (v.addSpacePrefix) decoders.push({ type: 'Strip', content: ' ', start: 1, stop: 0 })
  return {
    normalizer: v.addSpacePrefix
      ? { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: SPM_SPACE }, replaceSpace] }
      : replaceSpace,
    pre_tokenizer: null,
    decoder: { type: 'Sequence', decoders },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: v.unkId !== null ? v.tokens[v.unkId] : null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      ignore_merges: false,
      vocab: Object.fromEntries(vocabMap(v)),
      merges: mergesFromScores(v),
    },
  }
}

function byteLevelParts(v: GgufVocab): Json {
  const family = preTokenizerFor(v.pre)
  if (!family)
    throw new WhittleError('unsupported', v.file, `byte-level BPE pre-tokenizer '${v.pre}' is not supported yet`)
  const byteLevel = (useRegex: boolean): Json => ({
    type: 'ByteLevel',
    add_prefix_space: false,
    trim_offsets: true,
    use_regex: useRegex,
  })
  const plainGpt2 = v.pre === 'gpt-2' || v.pre === 'phi-2'
  return {
    normalizer: null,
    // ByteLevel's own regex is GPT-2's; every other family splits with its regexes first, in order.
    pre_tokenizer: plainGpt2
      ? byteLevel(true)
      : {
          type: 'Sequence',
          pretokenizers: [
            ...family.patterns.map((p) => ({
              type: 'Split',
              pattern: { Regex: p },
              behavior: 'Isolated',
              invert: false,
            })),
            byteLevel(false),
          ],
        },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: v.unkId !== null ? v.tokens[v.unkId] : null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: family.ignoreMerges,
      vocab: Object.fromEntries(vocabMap(v)),
      merges: v.merges,
    },
  }
}

/** tokenizer.json's document for a GGUF vocabulary. */
export function tokenizerJsonFromGguf(v: GgufVocab): Json {
  const parts = v.model === 'llama' ? spmParts(v) : byteLevelParts(v)
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: addedTokens(v),
    normalizer: parts.normalizer,
    pre_tokenizer: parts.pre_tokenizer,
    post_processor: postProcessor(v),
    decoder: parts.decoder,
    model: parts.model,
  }
}

/** tokenizer_config.json for the same vocabulary; `contextLength` becomes model_max_length when known. */
export function tokenizerConfigFromGguf(v: GgufVocab, contextLength: number | null): Json {
  const token = (id: number | null): string | null => (id === null ? null : v.tokens[id])
  return {
    add_bos_token: v.addBos,
    add_eos_token: v.addEos,
    bos_token: token(v.bosId),
    eos_token: token(v.eosId),
    unk_token: token(v.unkId),
    pad_token: token(v.padId),
    // llama.cpp cleans spaces when detokenizing byte-level BPE (except qwen2), never SentencePiece.
    clean_up_tokenization_spaces: v.model === 'gpt2' && v.pre !== 'qwen2',
    ...(contextLength !== null ? { model_max_length: contextLength } : {}),
    // The generic fast tokenizer runs tokenizer.json exactly as written (no class-specific rebuilding).
    tokenizer_class: 'PreTrainedTokenizerFast',
  }
}
