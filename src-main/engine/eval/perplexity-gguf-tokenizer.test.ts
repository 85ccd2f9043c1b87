// stories260K.gguf alone in a folder: its own tokenizer.ggml.* must give exactly the reference token ids
// (made with the HF tokenizer.json) and the reference perplexity; a tokenizer.json beside it wins.

import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { tokenizerSourceOf } from '../formats/model-tokenizer'
import { openModelFiles } from '../formats/open'
import { tempFolder } from '../formats/testing/temp-files-and-errors'
import { loadTokenizer } from '../formats/tokenizer'
import { loadModel } from '../model/loaded-model'
import { WorkerPool } from '../pool/worker-pool'
import { hasShared, referenceIds, referenceRun, shared, SKIP_SHARED } from '../testing/shared-data'
import { perplexity } from './perplexity'
import { readTextFile, tokenizeForEval } from './tokenize-text'

const TOLERANCE = 5e-4
const tmp = tempFolder('whittle-gguf-eval-')
let pool: WorkerPool
let ggufOnly: string

beforeAll(async () => {
  pool = await WorkerPool.create({ threads: 2 })
  if (!hasShared) return
  ggufOnly = join(tmp.dir, 'gguf-only')
  mkdirSync(ggufOnly)
  copyFileSync(shared('models/stories260K-gguf/stories260K.gguf'), join(ggufOnly, 'stories260K.gguf'))
})
afterAll(async () => {
  await pool?.close()
  tmp.cleanup()
})

describe.skipIf(!hasShared)(
  `the GGUF's own tokenizer on stories260K (${hasShared ? 'reference data present' : SKIP_SHARED})`,
  () => {
    for (const text of ['tinystories_eval', 'wikitext2_test'] as const) {
      it(`tokenizes ${text} to exactly the reference ids`, async () => {
        const files = await openModelFiles(ggufOnly)
        expect(files.tokenizerPath).toBeNull()
        expect(tokenizerSourceOf(files)).toBe('gguf')
        const ids = await tokenizeForEval(files, await readTextFile(shared(`text/${text}.txt`)))
        expect(ids.length).toBe(referenceIds(text).length)
        expect(
          Buffer.from(ids.buffer, ids.byteOffset, ids.byteLength).equals(Buffer.from(referenceIds(text).buffer)),
        ).toBe(true)
      })
    }

    it('evaluates to the reference perplexity within 0.05%', async () => {
      const model = await loadModel(ggufOnly)
      const ids = await tokenizeForEval(model.files, await readTextFile(shared('text/tinystories_eval.txt')))
      const r = await perplexity(pool, model, ids, { seqlen: 256 })
      const ref = referenceRun('fp32').ppl.tinystories_eval['256']
      expect(r.windows).toBe(ref.windows)
      expect(Math.abs(r.ppl / ref.ppl - 1)).toBeLessThan(TOLERANCE)
    })

    it('lets a tokenizer.json beside the GGUF win, opened as a folder or as the file', async () => {
      const dir = join(tmp.dir, 'with-decoy')
      mkdirSync(dir)
      copyFileSync(shared('models/stories260K-gguf/stories260K.gguf'), join(dir, 'stories260K.gguf'))
      // A decoy that tokenizes differently: the same vocabulary with only the first 20 merges.
      const json = JSON.parse(readFileSync(shared('models/stories260K/tokenizer.json'), 'utf8'))
      json.model.merges = json.model.merges.slice(0, 20)
      writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(json))
      const text = 'Once upon a time, there was a little girl named Lily.'
      const decoy = (await loadTokenizer(dir)).encode(text, { add_special_tokens: false }).ids
      for (const opened of [dir, join(dir, 'stories260K.gguf')]) {
        const files = await openModelFiles(opened)
        expect(tokenizerSourceOf(files)).toBe('tokenizer.json')
        expect(Array.from(await tokenizeForEval(files, text))).toEqual([1, ...decoy])
      }
      const own = await tokenizeForEval(await openModelFiles(ggufOnly), text)
      expect(Array.from(own)).not.toEqual([1, ...decoy])
    })
  },
)
