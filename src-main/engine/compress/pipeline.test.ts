// runRecipe's step dispatch on the real stories260K: a non-sequential layer-wise step (SmoothQuant, whose
// statistics all come from the original model) that targets one layer compresses that layer exactly as a
// run over every layer does and leaves the others alone; a recovery step (distill) after a quantizer
// reports the tensors it trained and drops their quantization grids.

import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { calibrationWindows } from '../calibration/windows'
import { readTensorF32 } from '../formats/read'
import { loadModel, type LoadedModel } from '../model/loaded-model'
import { WorkerPool } from '../pool/worker-pool'
import { hasShared, referenceIds, shared, SKIP_SHARED } from '../testing/shared-data'
import { runRecipe } from './pipeline'
import { validateRecipe } from './recipe/recipe'
import { isBlockLinear } from './recipe/targets'

describe.skipIf(!hasShared)(
  `runRecipe's step kinds on stories260K (${hasShared ? 'reference data present' : SKIP_SHARED})`,
  () => {
    let pool: WorkerPool
    let model: LoadedModel
    let windows: Int32Array[]
    beforeAll(async () => {
      pool = await WorkerPool.create({ threads: 2 })
      model = await loadModel(shared('models/stories260K'))
      windows = calibrationWindows(referenceIds('tinystories_calib'), { samples: 4, seqlen: 32, seed: 0 })
    })
    afterAll(() => pool?.close())

    it('a non-sequential step on one layer equals that layer of the same step on all layers, and touches no other', async () => {
      const one = await runRecipe(
        pool,
        model,
        validateRecipe({
          steps: [{ method: 'smoothquant', targets: { include: ['layers\\.1\\.'] }, params: { alpha: 0.5 } }],
        }),
        { windows },
      )
      const all = await runRecipe(
        pool,
        model,
        validateRecipe({ steps: [{ method: 'smoothquant', params: { alpha: 0.5 } }] }),
        { windows },
      )
      expect(one.tensors.length).toBeGreaterThan(0)
      expect(new Set(one.tensors.map((t) => t.layer))).toEqual(new Set([1]))
      expect(all.tensors.filter((t) => t.layer === 1).map((t) => t.name)).toEqual(one.tensors.map((t) => t.name))
      for (const info of model.tensors) {
        const got = await readTensorF32(one.view.entry(info.name))
        if (info.layer === 1) expect(got, info.name).toEqual(await readTensorF32(all.view.entry(info.name)))
        else expect(got, info.name).toEqual(await readTensorF32(model.entry(info.name)))
      }
      for (const name of one.view.replacedNames()) expect(model.tensors.find((t) => t.name === name)!.layer).toBe(1)
    })

    it("a recovery step after a quantizer reports what it trained and drops those tensors' grids", async () => {
      const rtn = { method: 'rtn', params: { bits: 4, group_size: 32 } }
      const quantized = await runRecipe(pool, model, validateRecipe({ steps: [rtn] }))
      const linears = model.tensors
        .filter(isBlockLinear)
        .map((t) => t.name)
        .sort()
      expect([...quantized.records.keys()].sort()).toEqual(linears)

      const distill = {
        method: 'distill',
        // LoRA: full-parameter training of a quantized student is refused (methods/distill.test.ts).
        params: { steps: 1, batch_size: 2, seqlen: 32, alpha: 0, order: 'sequential', trainable: 'lora' },
      }
      const recovered = await runRecipe(pool, model, validateRecipe({ steps: [rtn, distill] }), { windows })
      const trained = recovered.tensors.filter((t) => t.step === 1)
      expect(trained.every((t) => t.method === 'distill' && t.relOutputError === null)).toBe(true)
      expect(trained.map((t) => t.name).sort()).toEqual(linears)
      expect(recovered.records.size).toBe(0)
      for (const name of linears) {
        const before = await readTensorF32(quantized.view.entry(name))
        expect(await readTensorF32(recovered.view.entry(name)), name).not.toEqual(before)
      }
    })
  },
)
