import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { emptyInputStats } from '../../calibration/capture'
import { perplexity } from '../../eval/perplexity'
import { loadModel, type LoadedModel } from '../../model/loaded-model'
import { WorkerPool } from '../../pool/worker-pool'
import { NormalStream } from '../../synthetic/random'
import { hasShared, referenceIds, referenceRun, shared, SKIP_SHARED } from '../../testing/shared-data'
import { runRecipe } from '../pipeline'
import { validateRecipe } from '../recipe/recipe'
import { roundToF16 } from '../../numerics/float-encodings'
import { llmInt8, llmInt8BitsPerWeight } from './llm-int8'
import type { GroupContext, LinearToCompress } from './method'
import { referenceCalibrationWindows } from '../../calibration/testing/reference-windows'

function linear(
  weight: Float32Array,
  rows: number,
  cols: number,
  threshold = 6,
): LinearToCompress<{ threshold: number }> {
  return {
    name: 'layers.0.mlp.down_proj.weight',
    role: 'down',
    layer: 0,
    rows,
    cols,
    weight,
    params: llmInt8.parseParams({ threshold }, 'test'),
  }
}

function context(l: LinearToCompress<{ threshold: number }>, absmax: number[]): GroupContext<{ threshold: number }> {
  const input = emptyInputStats(absmax.length, false)
  input.absmax.set(absmax)
  input.tokens = 10
  return { layer: 0, group: 'down', linears: [l], input, pool: null as never }
}

describe('LLM.int8 mixed precision', () => {
  const rows = 4,
    cols = 8
  // Channels 2 and 5 are loud (> 6); channel 7 sits exactly at the threshold and is not an outlier.
  const absmax = [0.5, 1, 20, 3, 0.1, 7, 2, 6]
  const rng = new NormalStream(3)
  const W = Float32Array.from({ length: rows * cols }, () => rng.next() * 0.05)
  // Large weights in the outlier columns must not coarsen the int8 grid of the other columns.
  W[0 * cols + 2] = 3.3
  W[1 * cols + 5] = -1.7
  W[2 * cols + 2] = 0.123456789
  W.fill(0, 3 * cols, 4 * cols) // a row of zeros
  W[3 * cols + 5] = 0.5 // …apart from an outlier column

  it('keeps the loud columns up to fp16 and puts the rest on a per-row int8 grid', async () => {
    const Q = W.slice()
    const [outcome] = await llmInt8.compressGroup(context(linear(Q, rows, cols), absmax))
    for (let r = 0; r < rows; r++) {
      let m = 0
      for (let c = 0; c < cols; c++) if (c !== 2 && c !== 5) m = Math.max(m, Math.abs(W[r * cols + c]))
      const step = m / 127
      for (let c = 0; c < cols; c++) {
        const w = W[r * cols + c],
          q = Q[r * cols + c]
        if (c === 2 || c === 5) {
          expect(q).toBe(roundToF16(w))
          expect(Math.abs(q - w)).toBeLessThanOrEqual(Math.abs(w) * 2 ** -11)
          continue
        }
        if (m === 0) {
          expect(q).toBe(0)
          continue
        }
        const code = q / step
        expect(Math.abs(code - Math.round(code))).toBeLessThan(1e-4)
        expect(Math.abs(Math.round(code))).toBeLessThanOrEqual(127)
        expect(Math.abs(q - w)).toBeLessThanOrEqual(step / 2 + 1e-9)
      }
      // The row's largest regular weight lands exactly on ±127 steps.
      if (m > 0)
        expect(
          Math.max(...Array.from({ length: cols }, (_, c) => (c === 2 || c === 5 ? 0 : Math.abs(Q[r * cols + c])))),
        ).toBeCloseTo(m, 6)
    }
    expect(outcome.note).toBe('2/8 input channels kept in fp16 (25.0%)')
    // (8 bits × 6 columns + 16 bits × 2) / 8, plus a 16-bit scale per row of 8.
    expect(outcome.bitsPerWeight).toBe(12)
  })

  it('bits per weight: 8 with no outliers, 16 with all, plus the per-row scale', () => {
    expect(llmInt8BitsPerWeight(64, 0)).toBe(8 + 16 / 64)
    expect(llmInt8BitsPerWeight(64, 64)).toBe(16 + 16 / 64)
    expect(llmInt8BitsPerWeight(172, 3)).toBeCloseTo((8 * 169 + 48) / 172 + 16 / 172, 12)
  })

  it('a high threshold keeps nothing in fp16', async () => {
    const Q = W.slice()
    const [outcome] = await llmInt8.compressGroup(context(linear(Q, rows, cols, 100), absmax))
    expect(outcome.note).toMatch(/^0\/8 /)
    // Row 0's grid now spans the 3.3 weight: the small weights collapse to few codes.
    const step = 3.3 / 127
    for (let c = 0; c < cols; c++) expect(Math.abs(Q[c] / step - Math.round(Q[c] / step))).toBeLessThan(1e-3)
  })

  it('rejects missing calibration, mismatched statistics and bad params', async () => {
    const l = linear(W.slice(), rows, cols)
    await expect(llmInt8.compressGroup({ ...context(l, absmax), input: null })).rejects.toThrow(
      /no calibration statistics/,
    )
    await expect(llmInt8.compressGroup(context(l, [1, 2, 3]))).rejects.toThrow(/down_proj.*8 inputs.*3/)
    expect(() => llmInt8.parseParams({ threshold: -1 }, 'recipe step 2 (llm_int8)')).toThrow(
      /step 2 \(llm_int8\): params.threshold/,
    )
    expect(() => llmInt8.parseParams({ threshold: '6' }, 'step')).toThrow(/threshold/)
  })
})

describe.skipIf(!hasShared)(`LLM.int8 on stories260K (${hasShared ? 'reference data present' : SKIP_SHARED})`, () => {
  let pool: WorkerPool
  let model: LoadedModel
  beforeAll(async () => {
    pool = await WorkerPool.create({ threads: 2 })
    model = await loadModel(shared('models/stories260K'))
  })
  afterAll(() => pool?.close())

  it('threshold 6 stays within 1% of the FP32 perplexity', async () => {
    const windows = referenceCalibrationWindows()
    const r = await runRecipe(
      pool,
      model,
      validateRecipe({ steps: [{ method: 'llm_int8', params: { threshold: 6 } }] }),
      { windows },
    )
    expect(r.tensors).toHaveLength(35)
    const kept = r.tensors.map((t) => Number(/^(\d+)\//.exec(t.note ?? '')?.[1]))
    for (const t of r.tensors) expect(t.bitsPerWeight).toBeGreaterThanOrEqual(8 + 16 / t.shape[1])
    const ppl = (await perplexity(pool, r.view, referenceIds('tinystories_eval'), { seqlen: 256 })).ppl
    const fp32 = referenceRun('fp32').ppl.tinystories_eval['256'].ppl
    console.log(
      `llm_int8 t=6: ppl ${ppl.toFixed(4)} (fp32 ${fp32.toFixed(4)}), fp16 channels kept per Linear: ${kept.join(' ')}`,
    )
    expect(Math.abs(ppl / fp32 - 1)).toBeLessThan(0.01)
  })
})
