// Text → token ids the way the perplexity protocol wants them: the whole text encoded once without
// special tokens, one BOS at the very start (the GPTQ repo's llama_eval convention).

import { readFile, stat } from 'node:fs/promises'
import path from 'node:path'
import { WhittleError } from '../errors'
import { loadTokenizer } from '../formats/hf-folder'
import type { ModelFiles } from '../formats/types'

/** Eval texts are read whole; refuse anything absurd rather than exhausting memory. */
export const MAX_TEXT_BYTES = 256 << 20

export function bosId(files: ModelFiles): number {
  const pick = (o: Record<string, unknown> | null): number | null => (typeof o?.bos_token_id === 'number' ? o.bos_token_id : null)
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
  if (size > MAX_TEXT_BYTES) throw new WhittleError('validation', file, `text is ${size} bytes; the limit is ${MAX_TEXT_BYTES}`)
  const bytes = await readFile(file)
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes)
  } catch {
    throw new WhittleError('format', file, 'is not valid UTF-8 text')
  }
}

export async function tokenizeForEval(files: ModelFiles, text: string): Promise<Int32Array> {
  if (!files.tokenizerPath) throw new WhittleError('not-found', files.path, 'the model has no tokenizer.json beside it; perplexity needs one')
  const tokenizer = await loadTokenizer(path.dirname(files.tokenizerPath))
  const ids = tokenizer.encode(text, { add_special_tokens: false }).ids
  const out = new Int32Array(ids.length + 1)
  out[0] = bosId(files)
  out.set(ids, 1)
  return out
}
