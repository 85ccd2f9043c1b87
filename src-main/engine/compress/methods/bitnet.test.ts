// BitNet b1.58 as post-training quantization: the ternary quantizer against hand-computed values, and the
// method on the real stories260K: every Linear exactly q · γ with γ the fp16 absmean of its original
// weights (recomputed here from the file), int8 activations at Linear inputs at run time, and the honest
// perplexity of a model that was never trained ternary (it is destroyed, as the paper says it would be).

import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { perplexity } from '../../eval/perplexity'
import { readTensorF32 } from '../../formats/read'
import { WhittleError } from '../../errors'
import { loadModel, type LoadedModel } from '../../model/loaded-model'
import { withReplacements } from '../../model/model-view'
import { roundToF16 } from '../../numerics/float-encodings'
import { WorkerPool } from '../../pool/worker-pool'
import { hasShared, referenceIds, shared, SKIP_SHARED } from '../../testing/shared-data'
import { parameterReport } from '../compress-model'
import { runRecipe } from '../pipeline'
import { validateRecipe } from '../recipe/recipe'
import { absmeanScale, bitnet, parseBitnetParams, ternarize, ternaryBitsPerWeight } from './bitnet'
import { methodInfo } from './index'

/** Eval windows for the perplexities here: enough to see a model destroyed, quick on 2 cores. */
const EVAL_WINDOWS = 16

describe('the ternary quantizer', () => {
  it('rounds w / γ half to even and clips to {−1, 0, 1}, γ = mean|W| (f32 scale)', () => {
    // mean |W| = 1: 0.5 is a tie (→ 0), 1.5 rounds to 2 and clips to 1.
    const W = Float32Array.from([0.5, 1.5, -1, -1])
    const out = new Float32Array(4)
    expect(ternarize(W, out, 'f32')).toEqual({ scale: 1, zeros: 1 })
    expect(Array.from(out)).toEqual([0, 1, -1, -1])
  })

  it('rounds γ to fp16 by default and writes q · γ exactly', () => {
    // mean |W| = 1.3 / 4 = 0.325 → f32 → nearest fp16 = 1331 · 2⁻¹² = 0.324951171875.
    const W = Float32Array.from([0.1, -0.2, 0.3, 0.7])
    const gamma = 1331 / 4096
    expect(absmeanScale(W, 'f16')).toBe(gamma)
    const out = new Float32Array(4)
    // 0.1 / γ = 0.31 → 0; −0.2 / γ = −0.62 → −1; 0.3 / γ = 0.92 → 1; 0.7 / γ = 2.15 → 1.
    expect(ternarize(W, out, 'f16')).toEqual({ scale: gamma, zeros: 1 })
    expect(Array.from(out)).toEqual([0, -gamma, gamma, gamma])
  })

  it('keeps an all-zero tensor at +0 (γ floored at 1e-5, no −0)', () => {
    const W = Float32Array.from([0, -0, 0])
    const out = new Float32Array(3)
    const { scale, zeros } = ternarize(W, out, 'f16')
    expect(scale).toBeGreaterThan(0)
    expect(zeros).toBe(3)
    for (const v of out) expect(Object.is(v, 0)).toBe(true)
  })

  it('declares its parameter once: scale_dtype f16 by default, bad values refused with a typed error', () => {
    expect(methodInfo('bitnet')?.params.map((p) => p.name)).toEqual(['scale_dtype'])
    expect(parseBitnetParams({}, 'step 1 (bitnet)')).toEqual({ scaleDtype: 'f16' })
    expect(() => parseBitnetParams({ scale_dtype: 'f8' }, 'step 1 (bitnet)')).toThrow(WhittleError)
    expect(() => parseBitnetParams({ bits: 2 }, 'step 1 (bitnet)')).toThrow(/bits/)
    // 2-bit codes and one fp16 scale per tensor.
    expect(bitnet.predict({ scaleDtype: 'f16' }, 64, 172)).toEqual({
      bitsPerWeight: 2 + 16 / (64 * 172),
      format: 'ternary absmean w1.58a8',
    })
  })
})

describe.skipIf(!hasShared)(
  `BitNet b1.58 PTQ on stories260K (${hasShared ? 'reference data present' : SKIP_SHARED})`,
  () => {
    let pool: WorkerPool
    let model: LoadedModel
    beforeAll(async () => {
      pool = await WorkerPool.create({ threads: 2 })
      model = await loadModel(shared('models/stories260K'))
    })
    afterAll(() => pool?.close())
    const ppl = async (m: LoadedModel): Promise<number> =>
      (await perplexity(pool, m, referenceIds('tinystories_eval'), { seqlen: 256, maxWindows: EVAL_WINDOWS })).ppl

    it('makes every Linear q · γ with the fp16 absmean γ of its original weights, and runs W1.58A8', async () => {
      const r = await runRecipe(pool, model, validateRecipe({ steps: [{ method: 'bitnet' }] }))
      expect(r.tensors).toHaveLength(5 * 7)
      expect(r.view.runtime).toEqual({ activations: 'int8-per-token-inputs' })
      // Ternary zeros are codes, not pruning: the report counts no sparsity.
      expect(parameterReport(model, r.view, r.tensors).sparsity).toBe(0)
      for (const t of r.tensors) {
        const original = await readTensorF32(model.entry(t.name))
        const after = await readTensorF32(r.view.entry(t.name))
        let sum = 0
        for (const w of original) sum += Math.abs(w)
        const gamma = roundToF16(Math.fround(sum / original.length))
        // q = 0 exactly when |w / γ| ≤ 0.5 (round half to even), else the sign of w.
        let mismatches = 0
        for (let i = 0; i < original.length; i++) {
          const x = Math.fround(original[i] / gamma)
          const want = Math.abs(x) <= 0.5 ? 0 : Math.sign(x) * gamma
          if (after[i] !== want) mismatches++
        }
        expect(mismatches, t.name).toBe(0)
        expect(t.format).toBe('ternary absmean w1.58a8')
        expect(t.bitsPerWeight).toBe(ternaryBitsPerWeight(t.shape[0], t.shape[1], 'f16'))
        expect(t.grid).toEqual({
          kind: 'centroids',
          rows: [{ row: 0, centroids: [-gamma, 0, gamma] }],
          outlierFraction: 0,
        })
      }
    })

    it('destroys a model not trained for it, and says so in its perplexity', async () => {
      const r = await runRecipe(pool, model, validateRecipe({ steps: [{ method: 'bitnet' }] }))
      const fp32 = await ppl(model)
      const ternary = await ppl(r.view)
      console.info(
        `bitnet PTQ on stories260K (${EVAL_WINDOWS} eval windows): ppl ${ternary.toFixed(2)} (FP32 ${fp32.toFixed(4)})`,
      )
      // Measured ≈ 1,000 (all 1,154 windows: 1,132); RTN w3 per channel is 13.75, the vocabulary 512.
      expect(ternary).toBeGreaterThan(100)
      // The run-time activation quantization is applied, at Linear inputs only: without it, or with
      // SmoothQuant's scheme (q/k/v outputs quantized too), the same weights give other perplexities.
      const weightsOnly = withReplacements({ ...r.view, runtime: undefined })
      const withQkvOutputs = withReplacements({ ...r.view, runtime: { activations: 'int8-per-token' } })
      const [a, b] = [await ppl(weightsOnly), await ppl(withQkvOutputs)]
      expect(a).not.toBe(ternary)
      expect(b).not.toBe(ternary)
      // 8-bit activations cost the FP32 model little: W1.58 is what destroys it.
      const a8 = await ppl(withReplacements({ ...model, runtime: { activations: 'int8-per-token-inputs' } }))
      expect(a8).not.toBe(fp32)
      expect(Math.abs(a8 / fp32 - 1)).toBeLessThan(0.02)
    })
  },
)
