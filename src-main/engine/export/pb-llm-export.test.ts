// PB-LLM's result (compress/methods/pb-llm.ts) has no packed format: it exports dense. The bundled preset,
// run on stories260K with fewer calibration windows, written as safetensors at the held dtype (F32) and
// F16, re-opened and compared with the model perplexity was measured on.

import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { compressModel } from '../compress/compress-model'
import { parseRecipeText, validateRecipe } from '../compress/recipe/recipe'
import { perplexity } from '../eval/perplexity'
import { readTensorF32 } from '../formats/read'
import { loadModel, type LoadedModel } from '../model/loaded-model'
import { roundToF16 } from '../numerics/float-encodings'
import { WorkerPool } from '../pool/worker-pool'
import { hasShared, referenceIds, shared, SKIP_SHARED } from '../testing/shared-data'
import { exportModel } from './export-model'

const root = path.resolve(__dirname, '../../..')

describe.skipIf(!hasShared)(`PB-LLM dense export (${hasShared ? 'reference data present' : SKIP_SHARED})`, () => {
  let pool: WorkerPool
  let model: LoadedModel
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'whittle-pb-llm-'))
  const ppl = async (m: LoadedModel): Promise<number> =>
    (await perplexity(pool, m, referenceIds('tinystories_eval'), { seqlen: 256, maxWindows: 20 })).ppl

  beforeAll(async () => {
    pool = await WorkerPool.create({ threads: 2 })
    model = await loadModel(shared('models/stories260K'))
  })
  afterAll(async () => {
    await pool?.close()
    rmSync(tmp, { recursive: true, force: true })
  })

  it('the preset exports dense and re-opens with the same weights and perplexity', async () => {
    const file = path.join(root, 'resources/recipes/pb-llm-10.yaml')
    const recipe = parseRecipeText(readFileSync(file, 'utf8'), file)
    recipe.calibration = { ...recipe.calibration, samples: 16 }
    const out = await compressModel(pool, model, validateRecipe(recipe), {
      recipeDir: root,
      defaultCalibrationText: shared('text/tinystories_calib.txt'),
    })
    expect(out.records.size).toBe(0) // no uniform grid: nothing a packed format could store
    const dest = path.join(tmp, 'dense')
    const r = await exportModel(pool, out.view, dest, {
      format: 'safetensors',
      compression: { source: model, report: out.report, records: out.records },
    })
    expect(r.verified).toMatch(/re-read and equal/)
    const reopened = await loadModel(dest)
    for (const t of out.view.tensors)
      expect(Array.from(await readTensorF32(reopened.entry(t.name))), t.name).toEqual(
        Array.from(await readTensorF32(out.view.entry(t.name))),
      )
    expect(await ppl(reopened)).toBe(await ppl(out.view))
    // fp16 too: the values round as any weight does, and the binarized ones (±α, α fp16) come back exact.
    const half = path.join(tmp, 'dense-f16')
    await exportModel(pool, out.view, half, { format: 'safetensors', dtype: 'F16' })
    const reopenedHalf = await loadModel(half)
    const name = 'model.layers.2.mlp.down_proj.weight'
    const mine = await readTensorF32(out.view.entry(name))
    const back = await readTensorF32(reopenedHalf.entry(name))
    expect(Array.from(back)).toEqual(Array.from(mine, roundToF16))
    const grid = out.report.tensors.find((t) => t.name === name)!.grid
    if (grid?.kind !== 'salient') throw new Error(`${name} has no salient grid`)
    const exact = back.filter((v, i) => v === mine[i]).length
    expect(exact).toBeGreaterThanOrEqual(Math.round((1 - grid.salientFraction) * back.length))
    const report = JSON.parse(readFileSync(path.join(dest, 'whittle-report.json'), 'utf8'))
    expect(report.tensors.every((t: { method: string }) => t.method === 'pb_llm')).toBe(true)
    out.view.dispose()
  })
})
