// The recipe's `gguf` step and the GGUF export share one fallback table (compress/gguf-types/fallback.ts),
// so the perplexity a gguf step reports is the perplexity of the GGUF file an export of that type writes:
// checked on the real stories260K, whose 64-wide rows are not whole Q4_K blocks (Q5_0, llama.cpp's
// fallback) and whose 172-wide down_proj rows fit no block type (F16). The expectation is independent of
// the step: the file is written by the exporter, re-read by the GGUF reader and evaluated from there.

import { mkdtempSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runRecipe } from '../../compress/pipeline'
import { validateRecipe } from '../../compress/recipe/recipe'
import { perplexity } from '../../eval/perplexity'
import { loadModel, type LoadedModel } from '../../model/loaded-model'
import { WorkerPool } from '../../pool/worker-pool'
import { hasShared, referenceIds, shared, SKIP_SHARED } from '../../testing/shared-data'
import { exportGguf } from './export-gguf'

/** Enough windows to tell the types apart, quick on 2 cores (the full eval gives 5.2539, as in the README). */
const WINDOWS = 60
const tmp = mkdtempSync(path.join(os.tmpdir(), 'whittle-gguf-step-'))
afterAll(() => rmSync(tmp, { recursive: true, force: true }))

describe.skipIf(!hasShared)(
  `the gguf step measures the GGUF an export writes (${hasShared ? 'reference data present' : SKIP_SHARED})`,
  () => {
    let pool: WorkerPool
    let model: LoadedModel
    beforeAll(async () => {
      pool = await WorkerPool.create({ threads: 2 })
      model = await loadModel(shared('models/stories260K'))
    })
    afterAll(() => pool?.close())
    const ppl = async (m: LoadedModel): Promise<number> =>
      (await perplexity(pool, m, referenceIds('tinystories_eval'), { seqlen: 256, maxWindows: WINDOWS })).ppl

    it('Q4_K: the step perplexity equals the perplexity of the exported Q4_K file read back', async () => {
      const step = await runRecipe(
        pool,
        model,
        validateRecipe({ steps: [{ method: 'gguf', params: { type: 'Q4_K' } }] }),
      )
      const out = path.join(tmp, 'stories260K-Q4_K.gguf')
      // The step quantizes the Linears only; the tied embedding and its output copy stay F32 in the file too.
      const report = await exportGguf(pool, model, out, {
        type: 'Q4_K',
        tokenEmbeddingType: 'F32',
        outputTensorType: 'F32',
      })
      const linearTypes = new Map(
        report.tensors
          .filter((t) => /^blk\..*weight$/.test(t.name) && !t.name.includes('norm'))
          .map((t) => [t.name, t.type]),
      )
      expect(linearTypes.size).toBe(5 * 7)
      for (const [name, type] of linearTypes) expect(type).toBe(name.includes('ffn_down') ? 'F16' : 'Q5_0')
      // The step reports the same types per Linear.
      for (const t of step.tensors) expect(t.format).toBe(t.role === 'down' ? 'F16' : 'Q5_0')

      const reopened = await loadModel(out)
      const fromFile = await ppl(reopened)
      const fromStep = await ppl(step.view)
      expect(Math.abs(fromStep / fromFile - 1)).toBeLessThan(1e-6)
      // Q5_0 on most weights costs a few percent over FP32, far less than 4-bit RTN (5.6734).
      const fp32 = await ppl(model)
      expect(fromStep).toBeGreaterThan(fp32)
      expect(fromStep / fp32 - 1).toBeLessThan(0.05)
      console.info(
        `gguf Q4_K step on stories260K: ppl ${fromStep.toFixed(4)} (file ${fromFile.toFixed(4)}, FP32 ${fp32.toFixed(4)})`,
      )
    })
  },
)
