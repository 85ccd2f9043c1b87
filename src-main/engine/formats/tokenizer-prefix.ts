// When encoding only the start of a text gives exactly the first tokens of encoding all of it: an eval of
// its first N windows then tokenizes a few kilobytes instead of the whole file (the bulk of a short run).
//
// The cut goes just after a newline. Encoding text[0, cut) equals the first tokens of encoding the whole
// text when nothing the tokenizer does looks across that newline:
// - no truncation, no added token containing a newline or stripping whitespace beside it (lstrip/rstrip would
//   eat the newline, or more of a blank-line run in the whole text than in the prefix), no `remove_space`;
// - a normalizer made only of per-character or fixed-string steps that cannot match across a newline
//   (Prepend acts at the text's start, the same in both; Replace of a string without one; Unicode forms, for
//   which a newline composes with nothing; Lowercase);
// - no pre-tokenizer, so BPE sees one sequence; then a BPE whose vocabulary and merges never join a newline
//   to anything: the newline symbol is never merged, the symbols on either side evolve independently (a
//   merge's rank and its leftmost-first tie-break only involve its own side), and the newline itself
//   encodes the same (as itself, or its byte-fallback token: not unknown, which could fuse across);
// - no end-of-word suffix (it would mark the prefix's last symbol) nor continuing-subword prefix.
// Llama-2-style tokenizer.json files (SentencePiece BPE converted by HF, as stories260K's) meet all of it.
// Anything else answers false, and the caller encodes the whole text: slower, never different.

type Json = Record<string, unknown>

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/** A normalizer step that cannot act across a newline, nor remove the one the prefix ends with. */
function localNormalizer(n: unknown): boolean {
  if (n === null || n === undefined) return true
  if (!isObject(n)) return false
  switch (n.type) {
    case 'Sequence':
      return Array.isArray(n.normalizers) && n.normalizers.every(localNormalizer)
    case 'Prepend':
      return true
    case 'Replace': {
      const pattern = isObject(n.pattern) ? n.pattern.String : undefined
      return (
        typeof pattern === 'string' &&
        pattern.length > 0 &&
        !pattern.includes('\n') &&
        typeof n.content === 'string' &&
        !n.content.includes('\n')
      )
    }
    case 'NFC':
    case 'NFD':
    case 'NFKC':
    case 'NFKD':
    case 'Lowercase':
      return true
    default:
      return false
  }
}

function mergeParts(m: unknown): string[] | null {
  if (typeof m === 'string') return m.split(' ')
  if (Array.isArray(m) && m.every((p) => typeof p === 'string')) return m as string[]
  return null
}

/**
 * True when, for any text, encoding text.slice(0, cut) with cut just after a '\n' gives exactly the first
 * tokens of encoding the whole text (both without special tokens). `tokenizer` is tokenizer.json's content,
 * `config` tokenizer_config.json's (or {}).
 */
export function newlineCutsAreExact(tokenizer: unknown, config: unknown): boolean {
  if (!isObject(tokenizer) || !isObject(tokenizer.model)) return false
  if (tokenizer.truncation !== null && tokenizer.truncation !== undefined) return false
  if (isObject(config) && config.remove_space === true) return false
  const added = tokenizer.added_tokens ?? []
  if (!Array.isArray(added)) return false
  for (const t of added) {
    if (!isObject(t) || typeof t.content !== 'string' || t.content.includes('\n')) return false
    if (t.lstrip === true || t.rstrip === true) return false
  }
  if (!localNormalizer(tokenizer.normalizer)) return false
  if (tokenizer.pre_tokenizer !== null && tokenizer.pre_tokenizer !== undefined) return false
  const model = tokenizer.model
  if (model.type !== 'BPE' || !isObject(model.vocab) || !Array.isArray(model.merges)) return false
  if (model.end_of_word_suffix || model.continuing_subword_prefix) return false
  if (model.dropout !== null && model.dropout !== undefined && model.dropout !== 0) return false
  for (const token of Object.keys(model.vocab)) if (token !== '\n' && token.includes('\n')) return false
  for (const m of model.merges) {
    const parts = mergeParts(m)
    if (parts === null || parts.some((p) => p.includes('\n'))) return false
  }
  return Object.hasOwn(model.vocab, '\n') || (model.byte_fallback === true && Object.hasOwn(model.vocab, '<0x0A>'))
}
