// Bonsai's smaller model through the real export (write, read-back check, rename) and re-opened from disk:
// the same perplexity it was measured with; a plain config when every layer keeps the same width, and
// whittle_intermediate_sizes (read back) when layers differ; GGUF of per-layer widths refused.

import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { PER_LAYER_INTERMEDIATE_KEY } from '../arch'
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
const tmp = mkdtempSync(path.join(os.tmpdir(), 'whittle-bonsai-export-'))
afterAll(() => rmSync(tmp, { recursive: true, force: true }))

describe('bonsai exports', () => {
  let pool: WorkerPool
  let model: LoadedModel
  let windows: Int32Array[]
  let evalIds: Int32Array
  const ppl = async (m: LoadedModel): Promise<number> =>
    (await perplexity(pool, m, evalIds, { seqlen: 256, maxWindows: 24 })).ppl
  const bonsai = (params: Record<string, unknown>) =>
    runRecipe(pool, model, validateRecipe({ steps: [{ method: 'bonsai', params }] }), { windows })

  beforeAll(async () => {
    pool = await WorkerPool.create({ threads: 2 })
    model = await loadModel(path.join(root, 'resources/demo/stories260K'))
    const text = async (name: string): Promise<Int32Array> =>
      tokenizeForEval(model.files, await readTextFile(path.join(root, `resources/text/${name}.txt`)))
    windows = calibrationWindows(await text('tinystories_calib'), { samples: 8, seqlen: 256, seed: 0 })
    evalIds = await text('tinystories_eval')
  })
  afterAll(() => pool?.close())

  it(
    'uniform: a plain Llama checkpoint, re-opened with the same perplexity',
    async () => {
      const r = await bonsai({ reduction: 0.2, rounds: 1, samples: 16, sample_windows: 2 })
      const out = path.join(tmp, 'uniform')
      const written = await exportModel(pool, r.view, out, { format: 'safetensors' })
      expect(written.verified).toMatch(/re-read and equal/)
      const config = JSON.parse(readFileSync(path.join(out, 'config.json'), 'utf8'))
      const a = r.view.arch
      expect(config).toMatchObject({
        intermediate_size: a.intermediateSize,
        num_attention_heads: a.heads,
        num_key_value_heads: a.kvHeads,
        head_dim: 8,
        hidden_size: 64,
        num_hidden_layers: 5,
      })
      expect(config.intermediate_size).toBeLessThan(172)
      expect(config[PER_LAYER_INTERMEDIATE_KEY]).toBeUndefined()
      const reopened = await loadModel(out)
      expect(reopened.arch.warnings).toEqual([])
      expect(reopened.summary.parameterCount).toBe(r.view.summary.parameterCount)
      expect(reopened.summary.parameterCount / model.summary.parameterCount).toBeLessThanOrEqual(0.8)
      expect(await ppl(reopened)).toBe(await ppl(r.view))
    },
    scaled(120_000),
  )

  it(
    'per-layer widths: whittle_intermediate_sizes written and read back, the same perplexity; no GGUF',
    async () => {
      const r = await bonsai({ reduction: 0.2, uniform: false, by: 'magnitude' })
      const widths = r.view.arch.intermediateSizes!
      expect(new Set(widths).size).toBeGreaterThan(1)
      const out = path.join(tmp, 'per-layer')
      await exportModel(pool, r.view, out, { format: 'safetensors' })
      const config = JSON.parse(readFileSync(path.join(out, 'config.json'), 'utf8'))
      expect(config[PER_LAYER_INTERMEDIATE_KEY]).toEqual(widths)
      expect(config.intermediate_size).toBe(Math.max(...widths))
      const reopened = await loadModel(out)
      expect(reopened.arch.intermediateSizes).toEqual(widths)
      expect(reopened.arch.warnings).toEqual([])
      expect(await ppl(reopened)).toBe(await ppl(r.view))
      await expect(
        exportModel(pool, r.view, path.join(tmp, 'per-layer.gguf'), { format: 'gguf', ggufType: 'F32' }),
      ).rejects.toMatchObject({ code: 'unsupported', message: expect.stringMatching(/different MLP widths/) })
    },
    scaled(120_000),
  )
})
