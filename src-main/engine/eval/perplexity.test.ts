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

  it('the relaxed-SIMD kernels (fused multiply-add) match the reference and the exact kernels closely', async (ctx) => {
    const fusedPool = await WorkerPool.create({ threads: 2, kernels: 'fused' })
    try {
      if (fusedPool.kernelVariant !== 'fused') return ctx.skip() // this runtime has no relaxed SIMD
      const model = await loadModel(shared('models/stories260K'))
      const ids = referenceIds('tinystories_eval')
      const fused = await perplexity(fusedPool, model, ids, { seqlen: 256, maxWindows: 16 })
      const exact = await perplexity(pool, model, ids, { seqlen: 256, maxWindows: 16 })
      // One rounding fewer per multiply-add moves the mean NLL by rounding noise only.
      expect(Math.abs(fused.mean_nll - exact.mean_nll)).toBeLessThan(1e-5)
      const all = await perplexity(fusedPool, model, ids, { seqlen: 256 })
      expect(Math.abs(all.ppl / fp32!.ppl.tinystories_eval['256'].ppl - 1)).toBeLessThan(TOLERANCE)
    } finally {
      await fusedPool.close()
    }
  })

  it('windows per forward call do not change the result', async () => {
    const model = await loadModel(shared('models/stories260K'))
    const ids = referenceIds('tinystories_eval')
    const one = await perplexity(pool, model, ids, { seqlen: 256, maxWindows: 6, batch: 1 })
    const batched = await perplexity(pool, model, ids, { seqlen: 256, maxWindows: 6, batch: 4 })
    expect(batched.mean_nll).toBe(one.mean_nll)
  })

  it('the GGUF copy gives the same perplexity', async () => {
    const model = await loadModel(shared('models/stories260K-gguf/stories260K.gguf'))
    expect(model.arch.ropeLayout).toBe('gguf')
    const r = await perplexity(pool, model, referenceIds('tinystories_eval'), { seqlen: 256 })
    const ref = fp32!.ppl.tinystories_eval['256']
    expect(Math.abs(r.ppl / ref.ppl - 1)).toBeLessThan(TOLERANCE)
  })
})
