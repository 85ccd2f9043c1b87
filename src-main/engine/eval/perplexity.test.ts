// Perplexity of the real stories260K against the reference numbers computed with the GPTQ repo's
// evaluator in PyTorch fp32 (../shared/reference/reference.json). Tolerance: 0.05% relative.

import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadModel } from '../model/loaded-model'
import { WorkerPool } from '../pool/worker-pool'
import { hasShared, referenceIds, referenceRun, shared, SKIP_SHARED } from '../testing/shared-data'
import { perplexity } from './perplexity'
import { readTextFile, tokenizeForEval } from './tokenize-text'

const TOLERANCE = 5e-4
let pool: WorkerPool

beforeAll(async () => {
  pool = await WorkerPool.create({ threads: 2 })
})
afterAll(() => pool?.close())

describe.skipIf(!hasShared)(`perplexity of stories260K (${hasShared ? 'reference data present' : SKIP_SHARED})`, () => {
  const fp32 = hasShared ? referenceRun('fp32') : null

  it('tokenizes the eval text to exactly the reference ids', async () => {
    const model = await loadModel(shared('models/stories260K'))
    const ids = await tokenizeForEval(model.files, await readTextFile(shared('text/tinystories_eval.txt')))
    expect(Array.from(ids)).toEqual(Array.from(referenceIds('tinystories_eval')))
  })

  for (const [text, seqlen] of [
    ['tinystories_eval', 256],
    ['tinystories_eval', 512],
    ['wikitext2_test', 256],
  ] as const) {
    it(`${text} at seqlen ${seqlen} matches the reference within 0.05%`, async () => {
      const model = await loadModel(shared('models/stories260K'))
      const r = await perplexity(pool, model, referenceIds(text), { seqlen })
      const ref = fp32!.ppl[text][String(seqlen)]
      expect(r.windows).toBe(ref.windows)
      expect(Math.abs(r.ppl / ref.ppl - 1)).toBeLessThan(TOLERANCE)
    })
  }

  it('the GGUF copy gives the same perplexity', async () => {
    const model = await loadModel(shared('models/stories260K-gguf/stories260K.gguf'))
    expect(model.arch.ropeLayout).toBe('gguf')
    const r = await perplexity(pool, model, referenceIds('tinystories_eval'), { seqlen: 256 })
    const ref = fp32!.ppl.tinystories_eval['256']
    expect(Math.abs(r.ppl / ref.ppl - 1)).toBeLessThan(TOLERANCE)
  })
})
