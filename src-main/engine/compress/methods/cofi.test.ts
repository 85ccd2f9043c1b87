// CoFi on the real stories260K (bundled demo: 5 layers, 8 query heads sharing 4 key/value heads, MLP width
// 172): the smaller model computes what the gate-folded model computes with the removed units masked
// out; it meets the parameter budget (exports: export/cofi-export.test.ts). The comparison with
// Bonsai plus the same number of KD steps, at 50% fewer parameters, needs minutes: WHITTLE_SLOW=1.

import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { calibrationWindows } from '../../calibration/windows'
import { perplexity } from '../../eval/perplexity'
import { readTextFile, tokenizeForEval } from '../../eval/tokenize-text'
import { createForward } from '../../forward'
import { readTensorF32 } from '../../formats/read'
import { loadModel, type LoadedModel } from '../../model/loaded-model'
import { withReplacements, type ModelView } from '../../model/model-view'
import { WorkerPool } from '../../pool/worker-pool'
import { scaled } from '../../testing/time-factor'
import { runRecipe } from '../pipeline'
import { validateRecipe } from '../recipe/recipe'
import { fullMask, subModelLosses, unitLayout } from '../structure/unit-masks'
import { cofi } from './cofi'

const root = path.resolve(__dirname, '../../../..')

// A few short steps, so the always-on tests take seconds.
const QUICK = { steps: 6, batch_size: 4, seqlen: 128, lr: 2e-3, gate_lr: 0.2, lambda_lr: 5 }

/** Which rows of `before` (rows of `width` values) reappear, in order, as the rows of `after`. */
function keptRows(before: Float32Array, after: Float32Array, width: number): number[] {
  const kept: number[] = []
  let i = 0
  for (let r = 0; r < after.length / width; r++) {
    const row = after.subarray(r * width, (r + 1) * width)
    while (!before.subarray(i * width, (i + 1) * width).every((v, c) => v === row[c])) i++
    kept.push(i++)
  }
  return kept
}

describe('cofi on stories260K', () => {
  let pool: WorkerPool
  let model: LoadedModel
  let windows: Int32Array[]
  beforeAll(async () => {
    pool = await WorkerPool.create({ threads: 2 })
    model = await loadModel(path.join(root, 'resources/demo/stories260K'))
    const text = async (name: string): Promise<Int32Array> =>
      tokenizeForEval(model.files, await readTextFile(path.join(root, `resources/text/${name}.txt`)))
    windows = calibrationWindows(await text('tinystories_calib'), { samples: 16, seqlen: 128, seed: 0 })
  })
  afterAll(() => pool?.close())

  for (const uniform of [true, false]) {
    it(
      `removing the units computes what the gate-folded model computes with them masked (${uniform ? 'uniform' : 'per-layer widths'})`,
      async () => {
        // No fine-tuning, so the folded model the step leaves in `folded` is the one the units leave; no
        // hidden gates, whose removal structure/cofi-hidden.test.ts checks.
        const folded: ModelView = withReplacements(model)
        const params = cofi.parseParams({ ...QUICK, reduction: 0.5, finetune: 0, uniform, hidden_gates: false }, 'test')
        const r = await cofi.restructure!({ view: folded, params, pool, windows })
        const layout = unitLayout(model)
        const before = model.summary.parameterCount
        const after = r.view.summary.parameterCount
        expect(after / before).toBeLessThanOrEqual(0.5)
        expect(after / before).toBeGreaterThan(0.48)
        expect(r.note).toMatch(
          /^cofi \(L0 gates on sub-layers, heads and neurons, KD T 2 α 0\.5 \+ layer distillation 1; 6 steps learning the gates/,
        )
        expect(r.training?.losses).toHaveLength(6)

        // Which units stayed, read off the weights themselves: gate_proj rows, k_proj rows (never folded).
        const mask = fullMask(layout)
        for (let l = 0; l < layout.layers; l++) {
          const read = (v: LoadedModel, name: string): Promise<Float32Array> => readTensorF32(v.entry(name))
          const neurons = keptRows(
            await read(folded, `model.layers.${l}.mlp.gate_proj.weight`),
            await read(r.view, `model.layers.${l}.mlp.gate_proj.weight`),
            64,
          )
          const groups = keptRows(
            await read(folded, `model.layers.${l}.self_attn.k_proj.weight`),
            await read(r.view, `model.layers.${l}.self_attn.k_proj.weight`),
            layout.headDim * 64,
          )
          mask.neurons[l].forEach((_, i) => (mask.neurons[l][i] = neurons.includes(i) ? 1 : 0))
          mask.groups[l].forEach((_, j) => (mask.groups[l][j] = groups.includes(j) ? 1 : 0))
          expect(r.view.entry(`model.layers.${l}.mlp.down_proj.weight`).shape).toEqual([64, neurons.length])
        }
        const widths = mask.neurons.map((m) => m.reduce((a, b) => a + b, 0))
        expect(new Set(widths).size === 1).toBe(uniform)

        const probe = windows.slice(0, 3)
        const masked = await createForward(pool, folded)
        const [want] = await subModelLosses(masked, layout, probe, [mask]).finally(() => masked.close())
        const smaller = await createForward(pool, r.view)
        const rows = await smaller.windowNll(probe).finally(() => smaller.close())
        const got = rows.reduce((a, row) => a + row.reduce((s, v) => s + v, 0), 0) / (probe.length * 127)
        expect(Math.abs(got / want - 1)).toBeLessThan(1e-5)
      },
      scaled(120_000),
    )
  }

  it(
    'with hidden gates: dimensions gated to 0 leave the residual stream, and the narrower model fine-tunes',
    async () => {
      // droprate_init 0.99 starts every gate near 0, so the deterministic gates close hidden dimensions
      // after a few steps; they go up to the budget, and the smaller model trains on the logits.
      const params = cofi.parseParams(
        { ...QUICK, steps: 4, reduction: 0.3, finetune: 0.5, hidden_gates: true, droprate_init: 0.99 },
        'test',
      )
      const r = await cofi.restructure!({ view: withReplacements(model), params, pool, windows })
      const before = model.summary.parameterCount
      const after = r.view.summary.parameterCount
      expect(r.view.arch.hiddenSize).toBeLessThan(model.arch.hiddenSize)
      expect(r.view.arch.headDim).toBe(model.arch.headDim)
      expect(after / before).toBeLessThanOrEqual(0.7)
      expect(after / before).toBeGreaterThan(0.6)
      expect(r.note).toContain(`hidden size ${model.arch.hiddenSize} → ${r.view.arch.hiddenSize}`)
      expect(r.training?.losses).toHaveLength(4)
      expect(r.training!.losses.every(Number.isFinite)).toBe(true)
    },
    scaled(60_000),
  )

  it('refuses what it cannot do, naming the parameter', async () => {
    expect(() => validateRecipe({ steps: [{ method: 'cofi', params: { reduction: 0.95 } }] })).toThrow(
      /params.reduction must be a number in \[0.01, 0.9\]/,
    )
    expect(() => validateRecipe({ steps: [{ method: 'cofi', params: { finetune: 1 } }] })).toThrow(
      /params.finetune must be a number in \[0, 0.95\]/,
    )
    expect(() => validateRecipe({ steps: [{ method: 'cofi', params: { uniform: false } }] })).toThrow(
      /params.uniform false gives layers of different widths.*finetune: 0/,
    )
    expect(() => validateRecipe({ steps: [{ method: 'cofi', params: { alpha: 0 } }] })).toThrow(
      /params.layer_distill distils hidden states from the teacher.*layer_distill: 0/,
    )
    expect(() => validateRecipe({ steps: [{ method: 'cofi', params: { micro_batch: 9 } }] })).toThrow(
      /params.micro_batch must be an integer in \[1, 8\]/,
    )
    await expect(
      runRecipe(pool, model, validateRecipe({ steps: [{ method: 'cofi', params: { ...QUICK, reduction: 0.9 } }] }), {
        windows,
      }),
    ).rejects.toMatchObject({
      code: 'validation',
      message: expect.stringMatching(/would leave a layer without heads or neurons/),
    })
  })
})

// The comparison: 50% fewer parameters, CoFi against Bonsai followed by distill with the same
// number of KD steps (the same batches, lr, T and α), on the whole eval text at seqlen 256, at seeds 0
// and 1 (window order, gate draws, Bonsai's sub-models); CoFi with and without its layer distillation.
describe.skipIf(!process.env.WHITTLE_SLOW)('cofi against bonsai + KD at 50% (WHITTLE_SLOW=1)', () => {
  it(
    'reports the perplexities; CoFi beats Bonsai + KD on the mean of 2 seeds',
    async () => {
      const pool = await WorkerPool.create({ threads: 2 })
      try {
        const model = await loadModel(path.join(root, 'resources/demo/stories260K'))
        const text = (name: string): Promise<Int32Array> =>
          readTextFile(path.join(root, `resources/text/${name}.txt`)).then((t) => tokenizeForEval(model.files, t))
        const windows = calibrationWindows(await text('tinystories_calib'), { samples: 64, seqlen: 256, seed: 0 })
        const evalIds = await text('tinystories_eval')
        const run = async (steps: Record<string, unknown>[]): Promise<{ ppl: number; params: number }> => {
          const r = await runRecipe(pool, model, validateRecipe({ steps }), { windows })
          return {
            ppl: (await perplexity(pool, r.view, evalIds, { seqlen: 256 })).ppl,
            params: r.view.summary.parameterCount,
          }
        }
        const mean = { bonsai: 0, cofi: 0 }
        for (const seed of [0, 1]) {
          const train = { steps: 100, batch_size: 8, seqlen: 256, lr: 2e-3, seed }
          const bonsaiKd = await run([
            { method: 'bonsai', params: { reduction: 0.5, rounds: 2, samples: 32, sample_windows: 2, seed } },
            { method: 'distill', params: train },
          ])
          const cofiLayers = await run([{ method: 'cofi', params: { reduction: 0.5, ...train } }])
          const cofiLogits = await run([{ method: 'cofi', params: { reduction: 0.5, ...train, layer_distill: 0 } }])
          console.log(
            `seed ${seed}, 50% fewer parameters, 100 KD steps: bonsai + KD ${bonsaiKd.ppl.toFixed(3)} (${bonsaiKd.params} parameters), ` +
              `cofi ${cofiLayers.ppl.toFixed(3)} (${cofiLayers.params}), cofi without layer distillation ${cofiLogits.ppl.toFixed(3)} (${cofiLogits.params})`,
          )
          expect(cofiLayers.params).toBeLessThanOrEqual(model.summary.parameterCount / 2)
          mean.bonsai += bonsaiKd.ppl / 2
          mean.cofi += cofiLayers.ppl / 2
        }
        expect(mean.cofi).toBeLessThan(mean.bonsai)
      } finally {
        pool.close()
      }
    },
    scaled(2_400_000),
  )
})
