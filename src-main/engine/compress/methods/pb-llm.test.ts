// PB-LLM: the stored pieces (mask, per-row α, 8-bit grids) checked against expectations computed here from
// the definitions, the storage count by hand, and on stories260K the paper's relation: 10% salient weights
// with error feedback beat plain binarization by a wide margin (its dense export: export/pb-llm-export.test.ts).

import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { WhittleError } from '../../errors'
import { perplexity } from '../../eval/perplexity'
import { loadModel, type LoadedModel } from '../../model/loaded-model'
import { roundToF16 } from '../../numerics/float-encodings'
import { quantizeValue } from '../../numerics/minmax-grid'
import { WorkerPool } from '../../pool/worker-pool'
import { hasShared, referenceIds, shared, SKIP_SHARED } from '../../testing/shared-data'
import { runRecipe } from '../pipeline'
import { validateRecipe } from '../recipe/recipe'
import { correlatedInputs, gram, lcg, outputError } from '../testing/synthetic-layer'
import { planHessian } from './gptq'
import { pbLlm, pbLlmBitsPerWeight, pbLlmQuantize, salientPicture, type PbLlmParams } from './pb-llm'
import { referenceCalibrationWindows } from '../../calibration/testing/reference-windows'

function randomWeight(n: number, seed: number, scale = 0.05): Float32Array {
  const rnd = lcg(seed)
  return Float32Array.from({ length: n }, () => rnd() * scale)
}

const params = (raw: Record<string, unknown>): PbLlmParams => pbLlm.parseParams(raw, 'test')

/** Indices of the k largest values (ties to the lower index), by a full sort. */
function topK(values: number[], k: number): Set<number> {
  const order = values.map((v, i) => i).sort((a, b) => values[b] - values[a] || a - b)
  return new Set(order.slice(0, k))
}

describe('PB-LLM on a synthetic Linear', () => {
  it('plain binarization: each row becomes sign(w) · α, α = mean |w| in fp16, the least-squares scale', async () => {
    const rows = 12,
      cols = 40
    const W = randomWeight(rows * cols, 1)
    const Q = W.slice()
    await pbLlmQuantize(Q, rows, cols, params({ salient_fraction: 0, compensate: false }), null)
    for (let r = 0; r < rows; r++) {
      const row = Array.from(W.subarray(r * cols, (r + 1) * cols))
      const alpha = roundToF16(row.reduce((s, w) => s + Math.abs(w), 0) / cols)
      row.forEach((w, c) => expect(Q[r * cols + c]).toBe(w >= 0 ? alpha : -alpha))
      // For fixed signs, mean |w| minimises Σ (w − α·sign w)²: any other scale does worse.
      const err = (a: number): number => row.reduce((s, w) => s + (w - (w >= 0 ? a : -a)) ** 2, 0)
      expect(err(alpha * 1.05)).toBeGreaterThan(err(alpha))
      expect(err(alpha * 0.95)).toBeGreaterThan(err(alpha))
    }
  })

  it('by magnitude: the k largest |w| of the matrix stay on an 8-bit grid, the rest are ±α of the rest', async () => {
    const rows = 16,
      cols = 50
    const W = randomWeight(rows * cols, 2)
    const Q = W.slice()
    const grid = await pbLlmQuantize(Q, rows, cols, params({ salient: 'magnitude', compensate: false }), null)
    const k = Math.round(0.1 * rows * cols)
    const salient = topK(Array.from(W, Math.abs), k)
    expect([...grid.mask.keys()].filter((i) => grid.mask[i] === 1)).toEqual([...salient].sort((a, b) => a - b))
    for (let r = 0; r < rows; r++) {
      const idx = Array.from({ length: cols }, (_, c) => r * cols + c)
      const binary = idx.filter((i) => !salient.has(i))
      const kept = idx.filter((i) => salient.has(i))
      const alpha = roundToF16(binary.reduce((s, i) => s + Math.abs(W[i]), 0) / binary.length)
      for (const i of binary) expect(Q[i]).toBe(W[i] >= 0 ? alpha : -alpha)
      // 255 steps over ±absmax of the row's salient weights: within half a step (fp16 scale rounding aside).
      const absmax = Math.max(0, ...kept.map((i) => Math.abs(W[i])))
      for (const i of kept) expect(Math.abs(Q[i] - W[i])).toBeLessThanOrEqual((absmax / 255) * 1.01)
    }
  })

  it('by Hessian: with a diagonal H the score is w² · (H_ii + damp), the inverse Cholesky diagonal squared', async () => {
    const rows = 8,
      cols = 24
    const W = randomWeight(rows * cols, 3)
    const rnd = lcg(4)
    const diag = Array.from({ length: cols }, () => 0.1 + 10 * (rnd() + 0.5))
    const H = new Float64Array(cols * cols)
    diag.forEach((d, i) => (H[i * cols + i] = d))
    const p = params({ salient: 'hessian', compensate: false, salient_fraction: 0.2 })
    const grid = await pbLlmQuantize(W.slice(), rows, cols, p, planHessian(H, cols, { damp: p.damp, actOrder: false }))
    const lambda = (p.damp * diag.reduce((a, b) => a + b, 0)) / cols
    const scores = Array.from(W, (w, i) => w * w * (diag[i % cols] + lambda))
    const expected = topK(scores, Math.round(0.2 * rows * cols))
    expect([...grid.mask.keys()].filter((i) => grid.mask[i] === 1)).toEqual([...expected].sort((a, b) => a - b))
    // Not the magnitude choice: the Hessian moved it.
    const byMagnitude = topK(Array.from(W, Math.abs), expected.size)
    expect([...expected].some((i) => !byMagnitude.has(i))).toBe(true)
  })

  it('error feedback lowers the output error on correlated inputs and keeps every weight on the stored grid', async () => {
    const T = 512,
      K = 64,
      rows = 32
    const X = correlatedInputs(T, K, 5)
    const W = randomWeight(rows * K, 6)
    const p = params({})
    const plan = planHessian(gram(X, T, K), K, { damp: p.damp, actOrder: false })
    const plain = W.slice()
    await pbLlmQuantize(plain, rows, K, { ...p, compensate: false }, plan)
    const fed = W.slice()
    const grid = await pbLlmQuantize(fed, rows, K, p, plan)
    const errPlain = outputError(X, T, W, plain, rows, K)
    const errFed = outputError(X, T, W, fed, rows, K)
    expect(errFed).toBeLessThan(errPlain * 0.8)
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < K; c++) {
        const q = fed[r * K + c]
        if (grid.mask[r * K + c]) expect(quantizeValue(q, grid.salientGrids[r])).toBe(q)
        else expect(Math.abs(q)).toBe(grid.alpha[r])
      }
    }
  })

  it('the picture: salient density per cell and the salient fraction', async () => {
    // Large weights only in rows 0–7, columns 0–3 of a 32 × 32 matrix: exactly the 3.125% kept.
    const W = randomWeight(32 * 32, 7, 0.01)
    for (let r = 0; r < 8; r++) for (let c = 0; c < 4; c++) W[r * 32 + c] = 1 + r + c
    const grid = await pbLlmQuantize(
      W,
      32,
      32,
      params({ salient: 'magnitude', compensate: false, salient_fraction: 1 / 32 }),
      null,
    )
    const picture = salientPicture(grid)
    expect(picture).toMatchObject({ kind: 'salient', rows: 32, cols: 32, salientFraction: 1 / 32 })
    if (picture.kind !== 'salient') throw new Error('unreachable')
    picture.density.forEach((d, i) => expect(d).toBe(Math.floor(i / 32) < 8 && i % 32 < 4 ? 1 : 0))
    // A larger matrix pools to 32 × 32 cells.
    const big = await pbLlmQuantize(
      randomWeight(64 * 172, 8),
      64,
      172,
      params({ salient: 'magnitude', compensate: false }),
      null,
    )
    const pooled = salientPicture(big)
    expect(pooled).toMatchObject({ rows: 32, cols: 32, salientFraction: Math.round(0.1 * 64 * 172) / (64 * 172) })
  })

  it('counts storage: 1-bit signs, 8-bit salient codes, their positions, fp16 scales per row', () => {
    // 64 × 172, 10%: 1101 salient weights. Codes 9907·1 + 1101·8; positions as index lists,
    // 1101 · ⌈log2 172⌉ (8) + 64 · ⌈log2 173⌉ (8) = 9320 bits < the 11008-bit mask; α and scale: 64 · 32.
    expect(pbLlmBitsPerWeight({ salientFraction: 0.1 }, 64, 172)).toBeCloseTo((9907 + 8808 + 9320 + 2048) / 11008, 12)
    // 40% of 64 × 64: index lists (1638 · 6 + 64 · 7 = 10276) would cost more than the 4096-bit mask.
    expect(pbLlmBitsPerWeight({ salientFraction: 0.4 }, 64, 64)).toBeCloseTo((2458 + 1638 * 8 + 4096 + 2048) / 4096, 12)
    // Plain binarization: a sign per weight and α per row.
    expect(pbLlmBitsPerWeight({ salientFraction: 0 }, 64, 172)).toBeCloseTo(1 + 16 / 172, 12)
    expect(pbLlm.predict(params({}), 64, 172).bitsPerWeight).toBe(pbLlmBitsPerWeight({ salientFraction: 0.1 }, 64, 172))
  })

  it('rejects bad params, non-finite weights, and compensation without a Hessian', async () => {
    expect(() => pbLlm.parseParams({ salient_fraction: 1.5 }, 'recipe step 1 (pb_llm)')).toThrow(
      /step 1 \(pb_llm\): params.salient_fraction must be a number in \[0, 1\]/,
    )
    expect(() => pbLlm.parseParams({ salient: 'random' }, 's')).toThrow(
      /params.salient must be one of magnitude, hessian/,
    )
    expect(() => pbLlm.parseParams({ bits: 2 }, 's')).toThrow(/bits is not a parameter/)
    const linear = (weight: Float32Array, raw: Record<string, unknown>) => ({
      name: 'layers.1.mlp.up_proj.weight',
      role: 'up' as const,
      layer: 1,
      rows: 2,
      cols: 2,
      weight,
      params: params(raw),
    })
    const ctx = (l: ReturnType<typeof linear>) => ({
      layer: 1,
      group: 'gate_up' as const,
      linears: [l],
      input: null,
      pool: null as never,
    })
    await expect(pbLlm.compressGroup(ctx(linear(new Float32Array([1, NaN, 2, 3]), {})))).rejects.toThrow(
      /up_proj.*non-finite/,
    )
    const noHessian = pbLlm.compressGroup(ctx(linear(new Float32Array([1, -2, 3, -4]), {})))
    await expect(noHessian).rejects.toThrow(/layer 1 gate_up has no calibration Hessian/)
    await expect(noHessian).rejects.toBeInstanceOf(WhittleError)
    // Magnitude without compensation needs no calibration at all.
    const [out] = await pbLlm.compressGroup(
      ctx(
        linear(new Float32Array([1, -2, 3, -4]), { salient: 'magnitude', compensate: false, salient_fraction: 0.25 }),
      ),
    )
    expect(out.grid).toMatchObject({ kind: 'salient', salientFraction: 0.25 })
  })
})

describe.skipIf(!hasShared)(`PB-LLM on stories260K (${hasShared ? 'reference data present' : SKIP_SHARED})`, () => {
  let pool: WorkerPool
  let model: LoadedModel
  let windows: Int32Array[]
  // 50 of the 1,154 eval windows and 16 of the reference's calibration windows: a few seconds per run,
  // and the gaps measured below are tenfold (plain binarization ≈ 1,480, PB-LLM 10% ≈ 70 on these windows).
  const ppl = async (m: LoadedModel): Promise<number> =>
    (await perplexity(pool, m, referenceIds('tinystories_eval'), { seqlen: 256, maxWindows: 50 })).ppl

  beforeAll(async () => {
    pool = await WorkerPool.create({ threads: 2 })
    model = await loadModel(shared('models/stories260K'))
    windows = referenceCalibrationWindows().slice(0, 16)
  })
  afterAll(() => pool?.close())

  it('10% salient with error feedback beats plain binarization by a wide margin (over 5× lower perplexity)', async () => {
    const run = (raw: Record<string, unknown>) =>
      runRecipe(pool, model, validateRecipe({ steps: [{ method: 'pb_llm', params: raw }] }), { windows })
    const binary = await run({ salient_fraction: 0, compensate: false })
    const pb = await run({ salient_fraction: 0.1 })
    const unfed = await run({ salient_fraction: 0.1, compensate: false })
    const fp32Ppl = await ppl(model)
    const binaryPpl = await ppl(binary.view)
    const pbPpl = await ppl(pb.view)
    const unfedPpl = await ppl(unfed.view)
    console.log(
      `first 50 windows: fp32 ${fp32Ppl.toFixed(3)}, binary ${binaryPpl.toFixed(1)}, ` +
        `pb-llm 10% ${pbPpl.toFixed(2)}, without error feedback ${unfedPpl.toFixed(2)}`,
    )
    expect(pbPpl * 5).toBeLessThan(binaryPpl)
    // Error feedback is worth much of the gain on its own (measured ≈ 2.4× lower).
    expect(pbPpl).toBeLessThan(unfedPpl * 0.7)
    expect(pbPpl).toBeGreaterThan(fp32Ppl)
    expect(pb.tensors).toHaveLength(35)
    for (const t of pb.tensors) {
      expect(t.bitsPerWeight).toBe(pbLlmBitsPerWeight({ salientFraction: 0.1 }, t.shape[0], t.shape[1]))
      expect(t.grid).toMatchObject({ kind: 'salient' })
      if (t.grid?.kind === 'salient')
        expect(t.grid.salientFraction).toBe(Math.round(0.1 * t.shape[0] * t.shape[1]) / (t.shape[0] * t.shape[1]))
    }
    for (const t of binary.tensors) expect(t.bitsPerWeight).toBe(1 + 16 / t.shape[1])
  })
})
