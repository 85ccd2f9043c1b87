// SliceGPT exports (issue #17): the sliced model as safetensors with its narrower shapes, shortcut
// matrices and config key, and the dense reconstruction as a plain Llama; each re-opened by Whittle's
// own readers from disk and measured again.

import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { SLICEGPT_CONFIG_KEY } from '../arch/sliced-llama'
import { calibrationWindows } from '../calibration/windows'
import { runRecipe } from '../compress/pipeline'
import { validateRecipe } from '../compress/recipe/recipe'
import { perplexity } from '../eval/perplexity'
import { readTensorF32 } from '../formats/read'
import { loadModel, type LoadedModel } from '../model/loaded-model'
import type { ModelView } from '../model/model-view'
import { WorkerPool } from '../pool/worker-pool'
import { hasShared, referenceIds, shared, SKIP_SHARED } from '../testing/shared-data'
import { exportModel } from './export-model'

const tmp = mkdtempSync(path.join(os.tmpdir(), 'whittle-slicegpt-'))
afterAll(() => rmSync(tmp, { recursive: true, force: true }))

describe.skipIf(!hasShared)(`SliceGPT exports (${hasShared ? 'reference data present' : SKIP_SHARED})`, () => {
  let pool: WorkerPool
  let model: LoadedModel
  let windows: Int32Array[]
  const ppl = async (m: LoadedModel): Promise<number> =>
    (await perplexity(pool, m, referenceIds('tinystories_eval'), { seqlen: 256, maxWindows: 20 })).ppl
  const slice = async (params: Record<string, unknown>): Promise<ModelView> =>
    (await runRecipe(pool, model, validateRecipe({ steps: [{ method: 'slicegpt', params }] }), { windows })).view
  const config = (dir: string): Record<string, unknown> =>
    JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>

  /** Every tensor of the re-opened export equals the in-memory one, bit for bit. */
  async function sameTensors(view: ModelView, reopened: LoadedModel): Promise<void> {
    expect(reopened.files.tensors.map((t) => t.name).sort()).toEqual(view.files.tensors.map((t) => t.name).sort())
    for (const t of view.files.tensors) {
      expect(reopened.entry(t.name).shape, t.name).toEqual(t.shape)
      expect(Array.from(await readTensorF32(reopened.entry(t.name))), t.name).toEqual(
        Array.from(await readTensorF32(view.entry(t.name))),
      )
    }
  }

  beforeAll(async () => {
    pool = await WorkerPool.create({ threads: 2 })
    model = await loadModel(shared('models/stories260K'))
    windows = calibrationWindows(referenceIds('tinystories_calib'), { samples: 8, seqlen: 256, seed: 0 })
  })
  afterAll(() => pool?.close())

  it('writes the sliced model with its shapes, shortcut matrices and config key; re-opened, it measures the same', async () => {
    const view = await slice({ slicing: 0.25 })
    const out = path.join(tmp, 'sliced')
    await exportModel(pool, view, out, { format: 'safetensors' })
    const written = config(out)
    expect(written[SLICEGPT_CONFIG_KEY]).toEqual({ sliced_dims: Array(11).fill(48), slicing: 0.25 })
    expect(written.hidden_size).toBe(64)
    expect(written.tie_word_embeddings).toBe(false)
    const reopened = await loadModel(out)
    expect(reopened.arch.slicing?.dims).toEqual(Array(11).fill(48))
    expect(reopened.entry('model.layers.0.attn_shortcut_Q').shape).toEqual([48, 48])
    expect(reopened.entry('model.embed_tokens.weight').shape).toEqual([512, 48])
    expect(reopened.entry('lm_head.weight').shape).toEqual([512, 48])
    await sameTensors(view, reopened)
    expect(await ppl(reopened)).toBe(await ppl(view))
    // Formats other than the safetensors folder cannot carry the widths: refused, with a typed error.
    await expect(
      exportModel(pool, view, path.join(tmp, 'sliced.gguf'), { format: 'gguf', ggufType: 'F32' }),
    ).rejects.toMatchObject({ code: 'unsupported' })
  })

  it('writes the dense reconstruction as a plain Llama of the original hidden size, re-opened with the same perplexity', async () => {
    const view = await slice({ slicing: 0.25, form: 'dense' })
    const out = path.join(tmp, 'dense')
    await exportModel(pool, view, out, { format: 'safetensors' })
    const written = config(out)
    expect(written[SLICEGPT_CONFIG_KEY]).toBeUndefined()
    expect(written.hidden_size).toBe(64)
    expect(written.tie_word_embeddings).toBe(false)
    const reopened = await loadModel(out)
    expect(reopened.arch.slicing).toBeUndefined()
    expect(reopened.files.tensors.some((t) => t.name.includes('shortcut'))).toBe(false)
    expect(reopened.entry('model.layers.0.self_attn.q_proj.weight').shape).toEqual([64, 64])
    expect(reopened.entry('model.layers.4.mlp.down_proj.weight').shape).toEqual([64, 172])
    await sameTensors(view, reopened)
    expect(await ppl(reopened)).toBe(await ppl(view))
  })
})
