// Bonsai on the real stories260K (bundled demo: 5 layers, 8 query heads sharing 4 key/value heads, MLP
// width 172): masking computes what removal computes; at 20% fewer parameters it beats random selection
// of the same units (mean of 3 seeds) and their weight-norm ranking; per-layer widths are read back from
// the config. (Exports: export/bonsai-export.test.ts.)

import { demoTextIds, loadDemoModel } from '../../eval/testing/demo-model'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { PER_LAYER_INTERMEDIATE_KEY } from '../../arch'
import { calibrationWindows } from '../../calibration/windows'
import { perplexity } from '../../eval/perplexity'
import { createForward } from '../../forward'
import { modelFromFiles, type LoadedModel } from '../../model/loaded-model'
import { WorkerPool } from '../../pool/worker-pool'
import { scaled } from '../../testing/time-factor'
import { runRecipe } from '../pipeline'
import { validateRecipe } from '../recipe/recipe'
import { magnitudeScores } from '../structure/unit-importance'
import { fullMask, subModelLosses, unitLayout, type UnitMask } from '../structure/unit-masks'
import { selectUnits } from '../structure/unit-selection'

// Few sub-models on two windows, so the always-on test takes seconds; the paper's protocol is the slow test.
const QUICK = { rounds: 2, samples: 32, sample_windows: 2 }
const EVAL_WINDOWS = 32

describe('bonsai on stories260K', () => {
  let pool: WorkerPool
  let model: LoadedModel
  let windows: Int32Array[]
  let evalIds: Int32Array
  const ppl = async (m: LoadedModel, maxWindows = EVAL_WINDOWS): Promise<number> =>
    (await perplexity(pool, m, evalIds, { seqlen: 256, maxWindows })).ppl
  const bonsai = (params: Record<string, unknown>) =>
    runRecipe(pool, model, validateRecipe({ steps: [{ method: 'bonsai', params }] }), { windows })

  beforeAll(async () => {
    pool = await WorkerPool.create({ threads: 2 })
    model = await loadDemoModel()
    const calib = await demoTextIds(model, 'tinystories_calib')
    windows = calibrationWindows(calib, { samples: 128, seqlen: 256, seed: 0 })
    evalIds = await demoTextIds(model, 'tinystories_eval')
  })
  afterAll(() => pool?.close())

  const maskOf = (groups: number[][], neurons: number[][]): UnitMask => {
    const m = fullMask(unitLayout(model))
    m.groups.forEach((g, l) => g.forEach((_, j) => (g[j] = groups[l].includes(j) ? 1 : 0)))
    m.neurons.forEach((n, l) => n.forEach((_, i) => (n[i] = neurons[l].includes(i) ? 1 : 0)))
    return m
  }

  for (const uniform of [true, false]) {
    it(
      `masking heads and neurons computes what removing them computes (${uniform ? 'uniform' : 'per-layer widths'})`,
      async () => {
        const layout = unitLayout(model)
        const target = Math.ceil(0.2 * model.summary.parameterCount)
        const selection = selectUnits(layout, await magnitudeScores(model, layout), target, {
          uniform,
          split: 'proportional',
        })
        const r = await bonsai({ by: 'magnitude', reduction: 0.2, uniform })
        const widths = selection.neurons.map((n) => n.length)
        for (let l = 0; l < 5; l++) {
          expect(r.view.entry(`model.layers.${l}.mlp.gate_proj.weight`).shape).toEqual([widths[l], 64])
          expect(r.view.entry(`model.layers.${l}.mlp.down_proj.weight`).shape).toEqual([64, widths[l]])
          expect(r.view.entry(`model.layers.${l}.self_attn.o_proj.weight`).shape).toEqual([
            64,
            selection.groups[l].length * 16,
          ])
        }
        expect(new Set(widths).size === 1).toBe(uniform)
        const params = r.view.summary.parameterCount
        expect(model.summary.parameterCount - params).toBe(selection.removedParams)
        expect(params / model.summary.parameterCount).toBeLessThanOrEqual(0.8)
        expect(params / model.summary.parameterCount).toBeGreaterThan(0.79)

        const probe = windows.slice(0, 3)
        const original = await createForward(pool, model)
        const [masked] = await subModelLosses(original, layout, probe, [
          maskOf(selection.groups, selection.neurons),
        ]).finally(() => original.close())
        const smaller = await createForward(pool, r.view)
        const rows = await smaller.windowNll(probe).finally(() => smaller.close())
        const removed = rows.reduce((a, row) => a + row.reduce((s, v) => s + v, 0), 0) / (probe.length * 255)
        expect(Math.abs(removed / masked - 1)).toBeLessThan(1e-5)
      },
      scaled(120_000),
    )
  }

  it(
    'at 20% fewer parameters beats random heads and neurons (mean of 3 seeds) and their weight norms',
    async () => {
      const uniformResult = await bonsai({ reduction: 0.2, ...QUICK })
      const bonsaiPpl = await ppl(uniformResult.view)
      const magnitude = await ppl((await bonsai({ reduction: 0.2, by: 'magnitude' })).view)
      const random: number[] = []
      for (const seed of [0, 1, 2]) random.push(await ppl((await bonsai({ reduction: 0.2, by: 'random', seed })).view))
      const randomMean = random.reduce((a, b) => a + b) / 3
      const fp32 = await ppl(model)
      console.log(
        `bonsai 20%: fp32 ${fp32.toFixed(3)}, bonsai ${bonsaiPpl.toFixed(3)}, magnitude ${magnitude.toFixed(3)}, random ${random.map((x) => x.toFixed(3)).join(' / ')} (mean ${randomMean.toFixed(3)})`,
      )
      expect(bonsaiPpl).toBeGreaterThan(fp32)
      expect(bonsaiPpl).toBeLessThan(magnitude)
      expect(bonsaiPpl).toBeLessThan(randomMean)
      expect(uniformResult.view.summary.parameterCount / model.summary.parameterCount).toBeLessThanOrEqual(0.8)
      expect(uniformResult.view.arch.intermediateSizes).toBeUndefined()
    },
    scaled(240_000),
  )

  it(
    'per-layer widths: recorded in the config, read back from it, run by later steps; a wrong list is refused',
    async () => {
      const r = await bonsai({ reduction: 0.2, uniform: false, ...QUICK, rounds: 1 })
      const widths = r.view.arch.intermediateSizes!
      expect(widths).toHaveLength(5)
      expect(new Set(widths).size).toBeGreaterThan(1)
      expect(r.view.arch.intermediateSize).toBe(Math.max(...widths))
      expect(r.view.files.config).toMatchObject({
        [PER_LAYER_INTERMEDIATE_KEY]: widths,
        intermediate_size: Math.max(...widths),
      })
      expect(modelFromFiles(r.view.files).arch.intermediateSizes).toEqual(widths)

      // Later steps run per-layer widths: GPTQ's Hessians of down_proj's input are as wide as each layer.
      const quantized = await runRecipe(
        pool,
        model,
        validateRecipe({
          steps: [
            { method: 'bonsai', params: { reduction: 0.2, uniform: false, by: 'magnitude' } },
            { method: 'gptq', params: { bits: 8 } },
          ],
        }),
        { windows: windows.slice(0, 8) },
      )
      const downs = quantized.tensors.filter((t) => t.role === 'down')
      expect(downs.map((t) => t.shape[1])).toEqual(quantized.view.arch.intermediateSizes)
      expect(downs.every((t) => t.relOutputError !== null && t.relOutputError < 0.05)).toBe(true)

      const reread = (edit: (c: Record<string, unknown>) => void): unknown => {
        const config = { ...r.view.files.config }
        edit(config)
        return modelFromFiles({ ...r.view.files, config })
      }
      expect(() => reread((c) => (c[PER_LAYER_INTERMEDIATE_KEY] = [...widths, widths[0]]))).toThrow(
        expect.objectContaining({
          code: 'config',
          message: expect.stringMatching(/lists 6 widths for 5 decoder layers/),
        }),
      )
      expect(() => reread((c) => (c[PER_LAYER_INTERMEDIATE_KEY] = [...widths.slice(0, 4), 0]))).toThrow(
        expect.objectContaining({ code: 'config', message: expect.stringMatching(/must hold positive integers/) }),
      )
      expect(() => reread((c) => (c[PER_LAYER_INTERMEDIATE_KEY] = new Array(70000).fill(8)))).toThrow(
        expect.objectContaining({ code: 'config', message: expect.stringMatching(/far beyond any real model/) }),
      )
      expect(() => reread((c) => (c.intermediate_size = 172))).toThrow(
        expect.objectContaining({ code: 'config', message: expect.stringMatching(/not the largest/) }),
      )
      expect(() => reread((c) => (c[PER_LAYER_INTERMEDIATE_KEY] = [...widths.slice(0, 4), widths[4] - 1]))).toThrow(
        expect.objectContaining({
          code: 'config',
          message: expect.stringMatching(
            /layers\.4\.mlp\.gate_proj\.weight has shape .* from whittle_intermediate_sizes\[4\]/,
          ),
        }),
      )
    },
    scaled(180_000),
  )

  it('refuses what it cannot do, naming the parameter', async () => {
    expect(() => validateRecipe({ steps: [{ method: 'bonsai', params: { reduction: 0.95 } }] })).toThrow(
      /params.reduction must be a number in \[0.01, 0.9\]/,
    )
    expect(() => validateRecipe({ steps: [{ method: 'bonsai', params: { keeps: 0.5 } }] })).toThrow(
      /params.keeps is not a parameter/,
    )
    await expect(bonsai({ reduction: 0.9, by: 'magnitude' })).rejects.toMatchObject({
      code: 'validation',
      message: expect.stringMatching(/would leave a layer without heads or neurons/),
    })
  })
})

// The protocol: the default search on 128 × 256 calibration windows, the whole eval text.
describe.skipIf(!process.env.WHITTLE_SLOW)('bonsai on stories260K, full protocol (WHITTLE_SLOW=1)', () => {
  it(
    'at 20% fewer parameters beats random (mean of 3 seeds) and magnitude on the whole eval text',
    async () => {
      const pool = await WorkerPool.create({ threads: 2 })
      try {
        const model = await loadDemoModel()
        const windows = calibrationWindows(await demoTextIds(model, 'tinystories_calib'), {
          samples: 128,
          seqlen: 256,
          seed: 0,
        })
        const evalIds = await demoTextIds(model, 'tinystories_eval')
        const run = async (params: Record<string, unknown>): Promise<number> => {
          const r = await runRecipe(pool, model, validateRecipe({ steps: [{ method: 'bonsai', params }] }), { windows })
          return (await perplexity(pool, r.view, evalIds, { seqlen: 256 })).ppl
        }
        const bonsaiPpl = await run({ reduction: 0.2 })
        const magnitude = await run({ reduction: 0.2, by: 'magnitude' })
        const random = [await run({ reduction: 0.2, by: 'random', seed: 0 })]
        random.push(
          await run({ reduction: 0.2, by: 'random', seed: 1 }),
          await run({ reduction: 0.2, by: 'random', seed: 2 }),
        )
        const randomMean = random.reduce((a, b) => a + b) / 3
        console.log(
          `bonsai 20% (full protocol): ${bonsaiPpl.toFixed(3)}, magnitude ${magnitude.toFixed(3)}, random mean ${randomMean.toFixed(3)}`,
        )
        expect(bonsaiPpl).toBeLessThan(magnitude)
        expect(bonsaiPpl).toBeLessThan(randomMean)
      } finally {
        pool.close()
      }
    },
    scaled(900_000),
  )
})
