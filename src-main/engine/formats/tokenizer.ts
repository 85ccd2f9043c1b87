// The model's tokenizer (tokenizer.json + tokenizer_config.json), through @huggingface/tokenizers.
// The library sees file content, so every call into it is guarded: construction, a probe encode right after
// (a tokenizer.json can load and still throw on its first encode, e.g. with a malformed post_processor), and
// every later encode. Its exceptions become WhittleErrors naming tokenizer.json. Encoding a whole eval
// text runs in the parser worker, since loading a big vocabulary and encoding megabytes take seconds.

import { stat } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { Tokenizer } from '@huggingface/tokenizers'
import { WhittleError } from '../errors'
import { ioError } from '../io/ranged-file'
import { MAX_CONFIG_JSON_BYTES, MAX_TOKENIZER_JSON_BYTES } from './limits'
import { runParseJob } from './parse-worker-host'
import { readJsonFile } from './safetensors'

export type { Tokenizer }

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function describe(e: unknown): string {
  return e instanceof Error ? `${e.name}: ${e.message}` : String(e)
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile()
  } catch {
    return false
  }
}

/** tokenizer.json's path for a model folder, or for the tokenizer.json file itself. */
export async function tokenizerFileOf(path: string): Promise<string> {
  const abs = resolve(path)
  let folder = abs
  try {
    if ((await stat(abs)).isFile()) folder = dirname(abs)
  } catch (e) {
    throw ioError(abs, e, 'stat')
  }
  const file = join(folder, 'tokenizer.json')
  if (!(await isFile(file))) throw new WhittleError('not-found', folder, 'no tokenizer.json in the model folder')
  return file
}

/** Encodes through the library, turning whatever it throws into an error naming tokenizer.json. */
export function encodeWith(tokenizer: Tokenizer, file: string, text: string, addSpecialTokens: boolean): number[] {
  let ids: unknown
  try {
    ids = tokenizer.encode(text, { add_special_tokens: addSpecialTokens }).ids
  } catch (e) {
    throw new WhittleError(
      'config',
      file,
      `the tokenizer fails to encode text (${describe(e)}); tokenizer.json is malformed or uses a feature the tokenizer library cannot run`,
    )
  }
  if (
    !Array.isArray(ids) ||
    ids.some((id) => typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id > 0x7fffffff)
  ) {
    throw new WhittleError('config', file, 'the tokenizer produced token ids that are not non-negative 32-bit integers')
  }
  return ids as number[]
}

/**
 * Builds the tokenizer of a model from its tokenizer.json and (optional) tokenizer_config.json, on this
 * thread. `path` is the model folder, or the tokenizer.json file itself.
 */
export async function loadTokenizer(path: string): Promise<Tokenizer> {
  const file = await tokenizerFileOf(path)
  const json = await readJsonFile(file, MAX_TOKENIZER_JSON_BYTES, 'config')
  if (!isPlainObject(json)) throw new WhittleError('config', file, 'is not a JSON object')
  const configFile = join(dirname(file), 'tokenizer_config.json')
  let config: unknown = {}
  if (await isFile(configFile)) {
    config = await readJsonFile(configFile, MAX_CONFIG_JSON_BYTES, 'config')
    if (!isPlainObject(config)) throw new WhittleError('config', configFile, 'is not a JSON object')
  }
  let tokenizer: Tokenizer
  try {
    tokenizer = new Tokenizer(json, config as Record<string, unknown>)
  } catch (e) {
    throw new WhittleError('unsupported', file, `cannot build the tokenizer: ${describe(e)}`)
  }
  // Both paths the engine and the library take (with and without special tokens) must work on plain text.
  encodeWith(tokenizer, file, 'Hello, world. 123', false)
  encodeWith(tokenizer, file, 'Hello, world. 123', true)
  return tokenizer
}

/** The last tokenizer built on this thread, reused while its files are unchanged. */
let cached: { key: string; tokenizer: Tokenizer } | null = null

async function cacheKey(file: string): Promise<string> {
  const parts = [file]
  for (const f of [file, join(dirname(file), 'tokenizer_config.json')]) {
    try {
      const s = await stat(f)
      parts.push(`${s.size}:${s.mtimeMs}`)
    } catch {
      parts.push('-')
    }
  }
  return parts.join('|')
}

/** Encodes `text` without special tokens on this thread (the parser worker runs this). */
export async function encodeTextInline(folder: string, text: string): Promise<Int32Array> {
  const file = await tokenizerFileOf(folder)
  const key = await cacheKey(file)
  if (cached?.key !== key) cached = { key, tokenizer: await loadTokenizer(file) }
  return Int32Array.from(encodeWith(cached.tokenizer, file, text, false))
}

/** Encodes `text` without special tokens with the tokenizer of the model in `folder`, in the parser worker. */
export async function encodeText(folder: string, text: string): Promise<Int32Array> {
  const file = await tokenizerFileOf(folder)
  return runParseJob<Int32Array>({ kind: 'tokenize', folder: resolve(folder), text }, file, () =>
    encodeTextInline(folder, text),
  )
}
