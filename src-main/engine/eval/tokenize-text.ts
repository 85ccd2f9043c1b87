// Text → token ids the way the perplexity protocol wants them: the whole text encoded once without
// special tokens, one BOS at the very start (the GPTQ repo's llama_eval convention).

import { existsSync } from 'node:fs'
import { readFile, stat } from 'node:fs/promises'
import path from 'node:path'
import { WhittleError } from '../errors'
import { untilCancelled } from '../jobs/cancel'
import { ggufTextIds, ggufTokenizerOf, tokenizerSourceOf } from '../formats/model-tokenizer'
import { encodeText } from '../formats/tokenizer'
import { newlineCutsAreExact } from '../formats/tokenizer-prefix'
import { MAX_CONFIG_JSON_BYTES, MAX_TOKENIZER_JSON_BYTES } from '../formats/limits'
import { readJsonFile } from '../formats/safetensors'
import type { ModelFiles } from '../formats/types'

/** Eval texts are read whole; refuse anything absurd rather than exhausting memory. */
export const MAX_TEXT_BYTES = 256 << 20

export function bosId(files: ModelFiles): number {
  // Only an id a vocabulary can hold; anything else in the file falls through to the next source.
  const pick = (o: Record<string, unknown> | null): number | null => {
    const v = o && Object.hasOwn(o, 'bos_token_id') ? o.bos_token_id : null
    return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0x7fffffff ? v : null
  }
  return pick(files.config) ?? pick(files.generationConfig) ?? 1
}

export async function readTextFile(file: string): Promise<string> {
  let size: number
  try {
    const st = await stat(file)
    if (!st.isFile()) throw new WhittleError('validation', file, 'is not a file')
    size = st.size
  } catch (e) {
    if (e instanceof WhittleError) throw e
    throw new WhittleError('not-found', file, 'cannot read the text file')
  }
  if (size > MAX_TEXT_BYTES)
    throw new WhittleError('validation', file, `text is ${size} bytes; the limit is ${MAX_TEXT_BYTES}`)
  const bytes = await readFile(file)
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes)
  } catch {
    throw new WhittleError('format', file, 'is not valid UTF-8 text')
  }
}

export interface TokenizeOptions {
  /**
   * Only the first maxTokens ids (BOS included) are wanted, e.g. an eval of its first N windows: the result is
   * exactly the whole text's ids cut to that length, but where the tokenizer allows it
   * (formats/tokenizer-prefix.ts) only as much of the text as that takes is encoded.
   */
  maxTokens?: number
}

export async function tokenizeForEval(
  files: ModelFiles,
  text: string,
  options: TokenizeOptions = {},
): Promise<Int32Array> {
  const { maxTokens } = options
  // A GGUF without a tokenizer.json beside it uses its own tokenizer.ggml.* (BOS as its add_bos_token says).
  if (tokenizerSourceOf(files) === 'gguf') {
    const ids = await ggufTextIds(files, text)
    return maxTokens === undefined ? ids : ids.slice(0, maxTokens)
  }
  if (!files.tokenizerPath)
    throw new WhittleError('not-found', files.path, 'the model has no tokenizer.json beside it; perplexity needs one')
  const folder = path.dirname(files.tokenizerPath)
  // Loading the vocabulary and encoding a whole text take seconds: done in the parser worker, every
  // exception of the tokenizer library translated there into an error naming tokenizer.json.
  // The worker cannot be interrupted mid-encode; a cancelled job stops waiting for it (jobs/cancel.ts).
  const encode = (part: string): Promise<Int32Array> => untilCancelled(encodeText(folder, part))
  const ids =
    maxTokens !== undefined && (await prefixCutsAreExact(files.tokenizerPath))
      ? await encodePrefix(encode, text, maxTokens - 1)
      : await encode(text)
  const length = Math.min(ids.length + 1, maxTokens ?? Infinity)
  const out = new Int32Array(length)
  out[0] = bosId(files)
  out.set(ids.subarray(0, length - 1), 1)
  return out
}

async function prefixCutsAreExact(tokenizerPath: string): Promise<boolean> {
  // Unreadable or malformed files answer false here; encoding then reports them with the library's errors.
  try {
    const json = await readJsonFile(tokenizerPath, MAX_TOKENIZER_JSON_BYTES, 'config')
    const configFile = path.join(path.dirname(tokenizerPath), 'tokenizer_config.json')
    const config = existsSync(configFile) ? await readJsonFile(configFile, MAX_CONFIG_JSON_BYTES, 'config') : {}
    return newlineCutsAreExact(json, config)
  } catch {
    return false
  }
}

/** Characters per token assumed for the first cut; later cuts scale by the ratio actually seen. */
const FIRST_GUESS_CHARS_PER_TOKEN = 6

/**
 * The ids of a prefix of `text` ending just after a newline and holding at least `wanted` tokens (or of the
 * whole text, when it holds fewer). Each try encodes a longer prefix from the start, never a piece on its
 * own: the normalizer's Prepend acts once, at the text's start.
 */
export async function encodePrefix(
  encode: (part: string) => Promise<Int32Array>,
  text: string,
  wanted: number,
): Promise<Int32Array> {
  let chars = Math.max(1024, wanted * FIRST_GUESS_CHARS_PER_TOKEN)
  for (;;) {
    const newline = chars >= text.length ? -1 : text.indexOf('\n', chars - 1)
    const cut = newline < 0 ? text.length : newline + 1
    const ids = await encode(text.slice(0, cut))
    if (ids.length >= wanted || cut === text.length) return ids
    chars = Math.ceil(cut * Math.max(1.5, (1.25 * wanted) / Math.max(ids.length, 1)))
  }
}

/**
 * The BOS that tokenizeForEval puts at the text's start, or null where it puts none (a GGUF whose
 * vocabulary does not add one): the token llama-perplexity's protocol starts every window with.
 */
export async function evalBos(files: ModelFiles): Promise<number | null> {
  if (tokenizerSourceOf(files) === 'gguf') {
    const { addBos, bosId } = (await ggufTokenizerOf(files.files[0])).vocab
    return addBos && bosId !== null ? bosId : null
  }
  return bosId(files)
}
