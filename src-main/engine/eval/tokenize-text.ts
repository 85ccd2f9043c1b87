// Text → token ids the way the perplexity protocol wants them: the whole text encoded once without
// special tokens, one BOS at the very start (the GPTQ repo's llama_eval convention).

import { readFile, stat } from 'node:fs/promises'
import path from 'node:path'
import { WhittleError } from '../errors'
import { untilCancelled } from '../jobs/cancel'
import { ggufTextIds, ggufTokenizerOf, tokenizerSourceOf } from '../formats/model-tokenizer'
import { encodeText } from '../formats/tokenizer'
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

export async function tokenizeForEval(files: ModelFiles, text: string): Promise<Int32Array> {
  // A GGUF without a tokenizer.json beside it uses its own tokenizer.ggml.* (BOS as its add_bos_token says).
  if (tokenizerSourceOf(files) === 'gguf') return ggufTextIds(files, text)
  if (!files.tokenizerPath)
    throw new WhittleError('not-found', files.path, 'the model has no tokenizer.json beside it; perplexity needs one')
  // Loading the vocabulary and encoding a whole text take seconds: done in the parser worker, every
  // exception of the tokenizer library translated there into an error naming tokenizer.json.
  // The worker cannot be interrupted mid-encode; a cancelled job stops waiting for it (jobs/cancel.ts).
  const ids = await untilCancelled(encodeText(path.dirname(files.tokenizerPath), text))
  const out = new Int32Array(ids.length + 1)
  out[0] = bosId(files)
  out.set(ids, 1)
  return out
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
