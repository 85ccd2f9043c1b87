// Quantization of the real stories260K against the reference perplexities computed with the authors'
// code (../shared/reference/reference.json): RTN and GPTQ, asymmetric min-max, eval on TinyStories at
// seqlen 256, calibration on the reference's 128 × 256 windows. ±1% (±3% at 3 bits, see the README).

import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { perplexity } from '../eval/perplexity'
import { openModelFiles } from '../formats/open'
import { readTensorF32 } from '../formats/read'
import { loadModel, type LoadedModel } from '../model/loaded-model'
import { WorkerPool } from '../pool/worker-pool'
import { hasShared, referenceIds, referenceRun, shared, SKIP_SHARED } from '../testing/shared-data'
import { runRecipe } from './pipeline'
import { validateRecipe } from './recipe/recipe'
import { referenceCalibrationWindows } from '../calibration/testing/reference-windows'

describe.skipIf(!hasShared)(
  `quantization targets on stories260K (${hasShared ? 'reference data present' : SKIP_SHARED})`,
  () => {
    let pool: WorkerPool
    let model: LoadedModel
    let windows: Int32Array[]
    const evalIds = (): Int32Array => referenceIds('tinystories_eval')
    const measured = new Map<string, number>()

    beforeAll(async () => {
      pool = await WorkerPool.create({ threads: 2 })
      model = await loadModel(shared('models/stories260K'))
      windows = referenceCalibrationWindows()
    })
    afterAll(() => pool?.close())

    // The reference keeps f32 scales; Whittle's default fp16 scales (what GPTQ checkpoints store) are
    // checked against the same numbers in a second row.
    const cases = [
      { run: 'rtn_w8', method: 'rtn', params: { bits: 8, scale_dtype: 'f32' }, tol: 0.01 },
      { run: 'rtn_w4', method: 'rtn', params: { bits: 4, scale_dtype: 'f32' }, tol: 0.01 },
      { run: 'rtn_w4_g32', method: 'rtn', params: { bits: 4, group_size: 32, scale_dtype: 'f32' }, tol: 0.01 },
      { run: 'gptq_w4', method: 'gptq', params: { bits: 4, scale_dtype: 'f32' }, tol: 0.01 },
      { run: 'gptq_w4', method: 'gptq', params: { bits: 4 }, tol: 0.01 },
      { run: 'gptq_w3', method: 'gptq', params: { bits: 3, scale_dtype: 'f32' }, tol: 0.03 },
      // W8A8: weights int8 per channel, activations int8 per token at run time, after smoothing with α = 0.5.
      { run: 'smoothquant_w8a8_a0.5', method: 'smoothquant', params: { alpha: 0.5 }, tol: 0.01 },
    ]
    for (const c of cases) {
      it(`${c.run} (${JSON.stringify(c.params)}) lands within ${c.tol * 100}% of the reference perplexity`, async () => {
        const r = await runRecipe(pool, model, validateRecipe({ steps: [{ method: c.method, params: c.params }] }), {
          windows,
        })
        expect(r.tensors).toHaveLength(5 * 7)
        const ppl = (await perplexity(pool, r.view, evalIds(), { seqlen: 256 })).ppl
        if (!measured.has(c.run)) measured.set(c.run, ppl)
        const ref = referenceRun(c.run).ppl.tinystories_eval['256'].ppl
        expect(Math.abs(ppl / ref - 1)).toBeLessThan(c.tol)
      })
    }

    it('GGUF types fall back where rows are not whole blocks, and say so', async () => {
      const r = await runRecipe(pool, model, validateRecipe({ steps: [{ method: 'gguf', params: { type: 'Q4_K' } }] }))
      const down = r.tensors.filter((t) => t.role === 'down')
      const others = r.tensors.filter((t) => t.role !== 'down')
      // down_proj rows hold 172 values: not a multiple of 32 → F16; the 64-wide rows are not whole 256-blocks →
      // Q5_0, llama.cpp's fallback for Q4_K. (export/gguf/gguf-step-export.test.ts checks this perplexity
      // against the exported GGUF's.)
      expect(new Set(down.map((t) => t.format))).toEqual(new Set(['F16']))
      expect(new Set(others.map((t) => t.format))).toEqual(new Set(['Q5_0']))
      for (const t of r.tensors) expect(t.note).toMatch(/not a whole number/)
      const ppl = (await perplexity(pool, r.view, evalIds(), { seqlen: 256, maxWindows: 200 })).ppl
      const fp32 = (await perplexity(pool, model, evalIds(), { seqlen: 256, maxWindows: 200 })).ppl
      expect(Math.abs(ppl / fp32 - 1)).toBeLessThan(0.05)
    })

    it('GPTQ beats RTN at equal bits and grouping', () => {
      expect(measured.get('gptq_w4')!).toBeLessThan(measured.get('rtn_w4')!)
    })

    it('RTN w4 g32 reproduces the reference weights exactly', async () => {
      const r = await runRecipe(
        pool,
        model,
        validateRecipe({ steps: [{ method: 'rtn', params: { bits: 4, group_size: 32, scale_dtype: 'f32' } }] }),
      )
      const ref = await openModelFiles(shared('reference/compressed/rtn_w4_g32.safetensors'))
      let compared = 0
      for (const t of ref.tensors) {
        if (!r.view.replaced().has(t.name)) continue
        const mine = r.view.replaced().get(t.name)!
        const theirs = await readTensorF32(t)
        expect(Array.from(mine)).toEqual(Array.from(theirs))
        compared++
      }
      expect(compared).toBe(35)
    })

    it('reports per-tensor errors and bits per weight', async () => {
      const r = await runRecipe(
        pool,
        model,
        validateRecipe({ steps: [{ method: 'gptq', params: { bits: 4, group_size: 32 } }] }),
        { windows },
      )
      for (const t of r.tensors) {
        expect(t.relWeightError).toBeGreaterThan(0)
        expect(t.relWeightError).toBeLessThan(0.5)
        expect(t.relOutputError).not.toBeNull()
        // 4-bit codes + fp16 scale and 4-bit zero per 32 columns
        expect(t.bitsPerWeight).toBeCloseTo(4 + 20 / 32, 10)
      }
    })
  },
)
