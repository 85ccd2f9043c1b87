// Ternary QAT by distillation (distill's qat: ternary) on the real stories260K, issue #16's relation:
// "ternary QAT with distillation ends far below ternary PTQ". Checked here:
// - the training forward is the model bitnet PTQ makes: the first step's cross-entropy (before any update)
//   equals the mean NLL the inference forward measures on the same windows for the PTQ result (ternary
//   weights, int8 activations at Linear inputs), two independent code paths;
// - a few steps (always on) already end far below PTQ, the loss curve is reported, and the result is
//   exactly ternary · γ per Linear with γ an fp16 value, running W1.58A8;
// - with WHITTLE_SLOW=1, the longer run (the preset's: 200 steps of 8 windows, lr 2e-3 cosine, evals every
//   50) ends lower still.
// Measured 2026-12-03 on the shared 2-core machine (16 eval windows, where FP32 is 3.896): PTQ 1,145;
// QAT, 6 steps of 4 windows: 50.2. On 100 windows (PTQ 1,013): 20 steps of 8 at lr 2e-3: 24.9; 100 steps,
// cosine: 14.3. 200 steps (the slow run): 12.988 on all 1,154 windows (PTQ: 1,132), evals on 40 windows
// 17.76, 13.20, 11.52, 10.88 after 50, 100, 150, 200 steps; 14 min with the machine under load.

import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { perplexity } from '../../eval/perplexity'
import { readTensorF32 } from '../../formats/read'
import { loadModel, type LoadedModel } from '../../model/loaded-model'
import { roundToF16 } from '../../numerics/float-encodings'
import { WorkerPool } from '../../pool/worker-pool'
import { hasShared, referenceIds, shared, SKIP_SHARED } from '../../testing/shared-data'
import { scaled } from '../../testing/time-factor'
import { parameterReport } from '../compress-model'
import { runRecipe } from '../pipeline'
import { validateRecipe } from '../recipe/recipe'
import { WhittleError } from '../../errors'
import { parseDistillParams } from './distill'
import { referenceCalibrationWindows } from '../../calibration/testing/reference-windows'

const SLOW = process.env.WHITTLE_SLOW === '1'
const EVAL_WINDOWS = 16

describe('distill qat: ternary, as a parameter', () => {
  it('is off by default and does not combine with LoRA adapters', () => {
    expect(parseDistillParams({}, 'step 1 (distill)').qat).toBe('none')
    expect(parseDistillParams({ qat: 'ternary' }, 'step 1 (distill)').qat).toBe('ternary')
    expect(() => parseDistillParams({ qat: 'binary' }, 'step 1 (distill)')).toThrow(WhittleError)
    expect(() => parseDistillParams({ qat: 'ternary', trainable: 'lora' }, 'step 1 (distill)')).toThrow(/qat/)
  })
})

describe.skipIf(!hasShared)(
  `ternary QAT by distillation on stories260K (${hasShared ? 'reference data present' : SKIP_SHARED})`,
  () => {
    let pool: WorkerPool
    let model: LoadedModel
    let windows: Int32Array[]
    const ppl = async (m: LoadedModel): Promise<number> =>
      (await perplexity(pool, m, referenceIds('tinystories_eval'), { seqlen: 256, maxWindows: EVAL_WINDOWS })).ppl
    let ptq: Promise<LoadedModel> | null = null
    /** The bitnet PTQ result of the original (run once). */
    const ptqModel = (): Promise<LoadedModel> =>
      (ptq ??= runRecipe(pool, model, validateRecipe({ steps: [{ method: 'bitnet' }] })).then((r) => r.view))
    beforeAll(async () => {
      pool = await WorkerPool.create({ threads: 2 })
      model = await loadModel(shared('models/stories260K'))
      windows = referenceCalibrationWindows()
    })
    afterAll(() => pool?.close())

    it('trains on the forward bitnet PTQ evaluates: step 0 cross-entropy = the PTQ model NLL on its windows', async () => {
      // α = 0: plain cross-entropy, no teacher; sequential order: step 0 trains on windows 0 and 1.
      const qat = await runRecipe(
        pool,
        model,
        validateRecipe({
          steps: [
            {
              method: 'distill',
              params: { qat: 'ternary', alpha: 0, steps: 1, batch_size: 2, order: 'sequential', lr: 1e-3 },
            },
          ],
        }),
        { windows },
      )
      const ids = new Int32Array(512)
      ids.set(windows[0], 0)
      ids.set(windows[1], 256)
      const { mean_nll, windows: n } = await perplexity(pool, await ptqModel(), ids, { seqlen: 256 })
      expect(n).toBe(2)
      const ce = qat.training[0].losses[0]
      expect(Math.abs(ce / mean_nll - 1)).toBeLessThan(1e-4)
    })

    it(
      'a few KD steps end far below PTQ, with the curve reported and exactly ternary weights',
      async () => {
        const steps = 6
        const r = await runRecipe(
          pool,
          model,
          validateRecipe({
            steps: [
              {
                method: 'distill',
                params: { qat: 'ternary', steps, batch_size: 4, lr: 2e-3, order: 'sequential' },
              },
            ],
          }),
          { windows },
        )
        const after = await ppl(r.view)
        const ptqPpl = await ppl(await ptqModel())
        const t = r.training[0]
        console.info(
          `ternary QAT, ${steps} KD steps on stories260K (${EVAL_WINDOWS} eval windows): ppl ${after.toFixed(2)} ` +
            `(PTQ ${ptqPpl.toFixed(2)}); losses ${t.losses.map((l) => l.toFixed(3)).join(' ')}`,
        )
        expect(ptqPpl).toBeGreaterThan(100)
        // Far below: measured 50.2 against 1,145.
        expect(after * 10).toBeLessThan(ptqPpl)
        expect(t.losses).toHaveLength(steps)
        expect(t.lastLoss).toBeLessThan(t.firstLoss)
        expect(r.view.runtime).toEqual({ activations: 'int8-per-token-inputs' })
        expect(r.tensors).toHaveLength(5 * 7)
        // Ternary zeros are codes, not pruning: the report counts no sparsity.
        expect(parameterReport(model, r.view, r.tensors).sparsity).toBe(0)
        for (const o of r.tensors) {
          const w = await readTensorF32(r.view.entry(o.name))
          const levels = [...new Set(w)].sort((a, b) => a - b)
          const gamma = levels[levels.length - 1]
          expect(levels, o.name).toEqual([-gamma, 0, gamma])
          expect(roundToF16(gamma), o.name).toBe(gamma)
          expect(o.format).toBe('ternary absmean w1.58a8, QAT')
          expect(o.bitsPerWeight).toBe(2 + 16 / w.length)
        }
      },
      scaled(300_000),
    )

    it.skipIf(!SLOW)(
      'the longer run (WHITTLE_SLOW=1): 200 KD steps, evals every 50, end lower still',
      async () => {
        const r = await runRecipe(
          pool,
          model,
          validateRecipe({
            steps: [
              {
                method: 'distill',
                params: {
                  qat: 'ternary',
                  steps: 200,
                  batch_size: 8,
                  lr: 2e-3,
                  schedule: 'cosine',
                  warmup_steps: 10,
                  order: 'sequential',
                  eval_every: 50,
                  eval_text: shared('text/tinystories_eval.txt'),
                  eval_windows: 40,
                },
              },
            ],
          }),
          { windows },
        )
        const t = r.training[0]
        const after = (await perplexity(pool, r.view, referenceIds('tinystories_eval'), { seqlen: 256 })).ppl
        console.info(
          `ternary QAT, 200 KD steps: ppl ${after.toFixed(3)} on all windows; evals ${JSON.stringify(t.evals)}; ` +
            `losses every 10 steps ${t.losses
              .filter((_, i) => i % 10 === 0)
              .map((l) => l.toFixed(3))
              .join(' ')}`,
        )
        expect(after).toBeLessThan(15)
        expect(t.evals!.map((e) => e.step)).toEqual([50, 100, 150, 200])
        expect(t.evals![3].ppl).toBeLessThan(t.evals![0].ppl)
      },
      scaled(3_600_000),
    )
  },
)
