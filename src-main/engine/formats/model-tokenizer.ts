// Which tokenizer a model uses: a tokenizer.json beside the weights wins; otherwise a GGUF's own
// tokenizer.ggml.* metadata. The tokenizer.json path lives in tokenizer.ts; this adds the GGUF one.

import { stat } from 'node:fs/promises'
import { WhittleError } from '../errors'
import { loadGgufTokenizer, type GgufTokenizer } from './gguf-tokenizer'
import type { ModelFiles } from './types'

export type TokenizerSource = 'tokenizer.json' | 'gguf'

/** Where the tokenizer of `files` comes from, without reading it (null: it has none). */
export function tokenizerSourceOf(files: ModelFiles): TokenizerSource | null {
  if (files.tokenizerPath) return 'tokenizer.json'
  if (files.format === 'gguf' && files.files.length > 0) return 'gguf'
  return null
}

// Building a GGUF tokenizer reads the vocabulary arrays from disk; keep the last few, keyed by file state.
const cache = new Map<string, GgufTokenizer>()
const CACHE_SIZE = 4

/** The tokenizer built from a GGUF file's tokenizer.ggml.* metadata (cached while the file is unchanged). */
export async function ggufTokenizerOf(file: string): Promise<GgufTokenizer> {
  const st = await stat(file).catch(() => null)
  const key = `${file}|${st?.size}|${st?.mtimeMs}`
  const hit = cache.get(key)
  if (hit) return hit
  const made = await loadGgufTokenizer(file)
  cache.set(key, made)
  if (cache.size > CACHE_SIZE) cache.delete(cache.keys().next().value!)
  return made
}

/**
 * Token ids of a whole text with a GGUF model's own tokenizer, for the perplexity protocol: the text's
 * ids, preceded by BOS when the GGUF's add_bos_token asks for one (llama.cpp's rule; default true for
 * 'llama' tokenizers). Control tokens written in the text are recognised, as tokenizer.json's are.
 */
export async function ggufTextIds(files: ModelFiles, text: string): Promise<Int32Array> {
  if (files.format !== 'gguf' || files.files.length === 0)
    throw new WhittleError('validation', files.path, 'is not a GGUF model')
  const tokenizer = await ggufTokenizerOf(files.files[0])
  const { addBos, bosId } = tokenizer.vocab
  const ids = tokenizer.encode(text, { addSpecialTokens: false, parseSpecial: true })
  const bos = addBos && bosId !== null ? [bosId] : []
  const out = new Int32Array(bos.length + ids.length)
  out.set(bos, 0)
  out.set(ids, bos.length)
  return out
}
