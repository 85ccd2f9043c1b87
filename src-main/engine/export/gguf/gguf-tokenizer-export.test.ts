// GGUF → safetensors writes a tokenizer.json rebuilt from tokenizer.ggml.*: read back through the HF
// tokenizer library it must give the GGUF tokenizer's ids (the reference ids, for stories260K), and the
// converted folder must evaluate to the reference perplexity.

import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { perplexity } from '../../eval/perplexity'
import { readTextFile, tokenizeForEval } from '../../eval/tokenize-text'
import { ggufTokenizerFromVocab, readGgufVocab } from '../../formats/gguf-tokenizer'
import { BYTE_TO_UNICODE } from '../../formats/gguf-tokenizer-bpe'
import { writeGguf, type GgufKv } from '../../formats/gguf-writer'
import { tokenizerSourceOf } from '../../formats/model-tokenizer'
import { openModelFiles } from '../../formats/open'
import { tempFolder } from '../../formats/testing/temp-files-and-errors'
import { loadTokenizer } from '../../formats/tokenizer'
import { loadModel } from '../../model/loaded-model'
import { WorkerPool } from '../../pool/worker-pool'
import { hasShared, referenceIds, referenceRun, shared, SKIP_SHARED } from '../../testing/shared-data'
import { exportSafetensorsFromGguf } from './gguf-to-safetensors'
import { mergesFromScores, tokenizerConfigFromGguf, tokenizerJsonFromGguf } from './tokenizer-json'

const tmp = tempFolder('whittle-gguf-tok-export-')
let pool: WorkerPool
beforeAll(async () => {
  pool = await WorkerPool.create({ threads: 2 })
})
afterAll(async () => {
  await pool?.close()
  tmp.cleanup()
})

const SAMPLE = "hello world! hello<|endoftext|> 12345 it's  wow\n\n!! héllo"

/** A byte-level vocabulary covering every byte (so any text encodes), some merges, and a control token. */
async function byteLevelGguf(pre: string): Promise<string> {
  const bytes = Array.from({ length: 256 }, (_, b) => b)
  const tokens = [
    ...bytes.map((b) => BYTE_TO_UNICODE[b]),
    'he',
    'll',
    'llo',
    'hello',
    'Ġw',
    'or',
    'Ġwor',
    'ld',
    'Ġworld',
    '12',
    '123',
    '<|endoftext|>',
  ]
  const merges = ['h e', 'l l', 'll o', 'he llo', 'Ġ w', 'o r', 'Ġw or', 'l d', '1 2', '12 3']
  const file = join(tmp.dir, `bl-${pre}.gguf`)
  const kv: GgufKv[] = [
    { key: 'general.architecture', type: 'string', value: 'llama' },
    { key: 'tokenizer.ggml.model', type: 'string', value: 'gpt2' },
    { key: 'tokenizer.ggml.pre', type: 'string', value: pre },
    { key: 'tokenizer.ggml.tokens', type: 'array', itemType: 'string', value: tokens },
    {
      key: 'tokenizer.ggml.token_type',
      type: 'array',
      itemType: 'i32',
      value: tokens.map((t) => (t === '<|endoftext|>' ? 3 : 1)),
    },
    { key: 'tokenizer.ggml.merges', type: 'array', itemType: 'string', value: merges },
    { key: 'tokenizer.ggml.bos_token_id', type: 'u32', value: tokens.length - 1 },
  ]
  await writeGguf(file, { kv, tensors: [] })
  return file
}

describe('tokenizer.json rebuilt from a byte-level GGUF vocabulary', () => {
  for (const pre of ['gpt-2', 'llama-bpe', 'default', 'qwen2']) {
    it(`reads back through the tokenizer library to the same ids (pre '${pre}')`, async () => {
      const vocab = await readGgufVocab(await byteLevelGguf(pre))
      const dir = join(tmp.dir, `bl-hf-${pre}`)
      mkdirSync(dir)
      writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(tokenizerJsonFromGguf(vocab)))
      writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(tokenizerConfigFromGguf(vocab, null)))
      const hf = await loadTokenizer(dir)
      const want = ggufTokenizerFromVocab(vocab).encode(SAMPLE)
      expect(hf.encode(SAMPLE, { add_special_tokens: false }).ids).toEqual(want)
      // Sanity: the sample really exercises merges and the control token.
      expect(want).toContain(vocab.tokens.indexOf('hello'))
      expect(want).toContain(vocab.tokens.indexOf('<|endoftext|>'))
    })
  }
})

describe.skipIf(!hasShared)(
  `GGUF → safetensors carries the tokenizer (${hasShared ? 'reference data present' : SKIP_SHARED})`,
  () => {
    it("derives from the scores exactly the merges HF's converter wrote for stories260K", async () => {
      const vocab = await readGgufVocab(shared('models/stories260K-gguf/stories260K.gguf'))
      const hf = JSON.parse(readFileSync(shared('models/stories260K/tokenizer.json'), 'utf8')) as {
        model: { merges: (string | string[])[] }
      }
      const theirs = hf.model.merges.map((m) => (Array.isArray(m) ? m.join(' ') : m))
      expect(mergesFromScores(vocab).map((m) => m.join(' '))).toEqual(theirs)
    })

    it('writes a complete HF folder that tokenizes and evaluates like the reference', async () => {
      const src = join(tmp.dir, 'src')
      mkdirSync(src)
      copyFileSync(shared('models/stories260K-gguf/stories260K.gguf'), join(src, 'stories260K.gguf'))
      const out = join(tmp.dir, 'stories-hf')
      const report = await exportSafetensorsFromGguf(await loadModel(src), out)
      expect(report.tokenizer).toMatchObject({
        source: 'gguf',
        files: ['tokenizer.json', 'tokenizer_config.json'],
        verified: true,
        note: null,
      })

      const config = JSON.parse(readFileSync(join(out, 'tokenizer_config.json'), 'utf8'))
      expect(config).toMatchObject({
        bos_token: '<s>',
        eos_token: '</s>',
        unk_token: '<unk>',
        add_bos_token: true,
        add_eos_token: false,
      })
      const text = await readTextFile(shared('text/tinystories_eval.txt'))
      const ref = referenceIds('tinystories_eval')
      const model = await loadModel(out)
      expect(model.files.format).toBe('safetensors')
      // The written tokenizer.json, read by @huggingface/tokenizers through Whittle's HF reader.
      expect(tokenizerSourceOf(model.files)).toBe('tokenizer.json')
      const ids = await tokenizeForEval(model.files, text)
      expect(Array.from(ids)).toEqual(Array.from(ref))
      const r = await perplexity(pool, model, ids, { seqlen: 256 })
      const fp32 = referenceRun('fp32').ppl.tinystories_eval['256']
      expect(r.windows).toBe(fp32.windows)
      expect(Math.abs(r.ppl / fp32.ppl - 1)).toBeLessThan(5e-4)
    })

    it('copies a tokenizer.json that sits beside the GGUF instead of rebuilding one', async () => {
      const src = join(tmp.dir, 'src-with-json')
      mkdirSync(src)
      copyFileSync(shared('models/stories260K-gguf/stories260K.gguf'), join(src, 'stories260K.gguf'))
      for (const f of ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json'])
        copyFileSync(shared('models/stories260K', f), join(src, f))
      const out = join(tmp.dir, 'stories-hf-copied')
      const report = await exportSafetensorsFromGguf(await loadModel(src), out)
      expect(report.tokenizer).toMatchObject({
        source: 'tokenizer.json',
        files: ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json'],
      })
      for (const f of report.tokenizer.files)
        expect(readFileSync(join(out, f)).equals(readFileSync(join(src, f)))).toBe(true)
      expect((await openModelFiles(out)).tokenizerPath).toBe(join(out, 'tokenizer.json'))
    })
  },
)
