// CoFi's smaller model through the real export (write, read-back check) and re-opened from disk: the same
// perplexity it was measured with, and a plain Llama config (uniform widths, fewer heads).

import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { calibrationWindows } from '../calibration/windows'
import { runRecipe } from '../compress/pipeline'
import { validateRecipe } from '../compress/recipe/recipe'
import { perplexity } from '../eval/perplexity'
import { readTextFile, tokenizeForEval } from '../eval/tokenize-text'
import { loadModel, type LoadedModel } from '../model/loaded-model'
import { WorkerPool } from '../pool/worker-pool'
import { scaled } from '../testing/time-factor'
import { exportModel } from './export-model'

const root = path.resolve(__dirname, '../../..')
const tmp = mkdtempSync(path.join(os.tmpdir(), 'whittle-cofi-export-'))
afterAll(() => rmSync(tmp, { recursive: true, force: true }))

// A few short steps, so the test takes seconds.
const QUICK = { steps: 6, batch_size: 4, seqlen: 128, lr: 2e-3, gate_lr: 0.2, lambda_lr: 5 }

describe('cofi exports', () => {
  let pool: WorkerPool
  let model: LoadedModel
  let windows: Int32Array[]
  let evalIds: Int32Array
  const ppl = async (m: LoadedModel): Promise<number> =>
    (await perplexity(pool, m, evalIds, { seqlen: 256, maxWindows: 8 })).ppl

  beforeAll(async () => {
    pool = await WorkerPool.create({ threads: 2 })
    model = await loadModel(path.join(root, 'resources/demo/stories260K'))
    const text = async (name: string): Promise<Int32Array> =>
      tokenizeForEval(model.files, await readTextFile(path.join(root, `resources/text/${name}.txt`)))
    windows = calibrationWindows(await text('tinystories_calib'), { samples: 16, seqlen: 128, seed: 0 })
    evalIds = await text('tinystories_eval')
  })
  afterAll(() => pool?.close())

  it(
    'in a recipe with fine-tuning: a plain Llama checkpoint, exported and re-opened with the same perplexity',
    async () => {
      const r = await runRecipe(
        pool,
        model,
        validateRecipe({ steps: [{ method: 'cofi', params: { ...QUICK, reduction: 0.5 } }] }),
        { windows },
      )
      expect(r.view.summary.parameterCount / model.summary.parameterCount).toBeLessThanOrEqual(0.5)
      const out = path.join(tmp, 'cofi')
      const written = await exportModel(pool, r.view, out, { format: 'safetensors' })
      expect(written.verified).toMatch(/re-read and equal/)
      const config = JSON.parse(readFileSync(path.join(out, 'config.json'), 'utf8'))
      expect(config.intermediate_size).toBe(r.view.arch.intermediateSize)
      expect(config.num_attention_heads).toBe(r.view.arch.heads)
      const reopened = await loadModel(out)
      expect(reopened.arch.warnings).toEqual([])
      expect(reopened.summary.parameterCount).toBe(r.view.summary.parameterCount)
      const measured = await ppl(r.view)
      expect(await ppl(reopened)).toBe(measured)
      expect(measured).toBeGreaterThan(await ppl(model))
    },
    scaled(120_000),
  )
})
