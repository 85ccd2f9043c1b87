// The tokenizer files of a GGUF → safetensors conversion, so the folder is a complete HF model. A
// tokenizer.json beside the GGUF wins and is copied with its companions; otherwise tokenizer.json and
// tokenizer_config.json are rebuilt from tokenizer.ggml.*, and checked by encoding a probe text with both
// the written file (through the tokenizer library) and the GGUF's own tokenizer.

import { readFile, stat } from 'node:fs/promises'
import path from 'node:path'
import { WhittleError } from '../../errors'
import { ggufTokenizerFromVocab, readGgufVocab, type GgufVocab } from '../../formats/gguf-tokenizer'
import { MAX_TOKENIZER_JSON_BYTES } from '../../formats/limits'
import { loadTokenizer } from '../../formats/tokenizer'
import type { ModelFiles } from '../../formats/types'
import { tokenizerConfigFromGguf, tokenizerJsonFromGguf } from './tokenizer-json'

/** The files HF tokenizers read beside tokenizer.json, copied along when present. */
const COMPANIONS = ['tokenizer_config.json', 'special_tokens_map.json']

/** Covers words, spaces and newlines, digits, punctuation, accents, a non-BMP character and a control token's text. */
const PROBE = 'Once upon a time, Lily saw 1234 birds!\n\n  "Wow," she said. Ça va? naïve 東京 😀 <s></s>'

export interface TokenizerFilesReport {
  /** Where the written tokenizer came from; null when the folder has none (the reason is in `note`). */
  source: 'tokenizer.json' | 'gguf' | null
  files: string[]
  /** For a rebuilt tokenizer: whether the written tokenizer.json encodes the probe text as the GGUF does. */
  verified: boolean | null
  note: string | null
}

export interface TokenizerFiles {
  report: TokenizerFilesReport
  contents: { name: string; data: string | Uint8Array }[]
  vocab: GgufVocab | null
}

async function copyBeside(tokenizerJson: string): Promise<TokenizerFiles> {
  const dir = path.dirname(tokenizerJson)
  const contents: TokenizerFiles['contents'] = []
  for (const name of ['tokenizer.json', ...COMPANIONS]) {
    const file = path.join(dir, name)
    const st = await stat(file).catch(() => null)
    if (!st?.isFile()) continue
    if (st.size > MAX_TOKENIZER_JSON_BYTES)
      throw new WhittleError('validation', file, `${st.size} bytes is too large for a tokenizer file`)
    contents.push({ name, data: await readFile(file) })
  }
  return {
    report: { source: 'tokenizer.json', files: contents.map((c) => c.name), verified: null, note: null },
    contents,
    vocab: null,
  }
}

/** What to write for the tokenizer of a GGUF model (nothing is written here). */
export async function tokenizerFilesFor(files: ModelFiles, contextLength: number | null): Promise<TokenizerFiles> {
  if (files.tokenizerPath) return copyBeside(files.tokenizerPath)
  let vocab: GgufVocab
  try {
    vocab = await readGgufVocab(files.files[0])
  } catch (e) {
    // No tokenizer, or a kind not rebuilt yet: the weights still convert, and the report says why it is missing.
    if (e instanceof WhittleError && (e.code === 'not-found' || e.code === 'unsupported')) {
      return { report: { source: null, files: [], verified: null, note: e.message }, contents: [], vocab: null }
    }
    throw e
  }
  const contents = [
    { name: 'tokenizer.json', data: JSON.stringify(tokenizerJsonFromGguf(vocab)) + '\n' },
    {
      name: 'tokenizer_config.json',
      data: JSON.stringify(tokenizerConfigFromGguf(vocab, contextLength), null, 2) + '\n',
    },
  ]
  return { report: { source: 'gguf', files: contents.map((c) => c.name), verified: null, note: null }, contents, vocab }
}

/** After writing into `dir`: does the tokenizer library read the rebuilt tokenizer.json to the GGUF's ids? */
export async function verifyTokenizerFiles(dir: string, t: TokenizerFiles): Promise<void> {
  if (!t.vocab) return
  const written = await loadTokenizer(dir)
  const got = written.encode(PROBE, { add_special_tokens: false }).ids
  const want = ggufTokenizerFromVocab(t.vocab).encode(PROBE, { parseSpecial: true })
  t.report.verified = got.length === want.length && got.every((id, i) => id === want[i])
  if (!t.report.verified)
    t.report.note =
      'the rebuilt tokenizer.json encodes a probe text differently from the GGUF tokenizer; check it before relying on it'
}
