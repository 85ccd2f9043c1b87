import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { perplexity } from '../../eval/perplexity'
import { loadModel, type LoadedModel } from '../../model/loaded-model'
import { WorkerPool } from '../../pool/worker-pool'
import { NormalStream } from '../../synthetic/random'
import { hasShared, referenceIds, shared, SKIP_SHARED } from '../../testing/shared-data'
import { runRecipe } from '../pipeline'
import { validateRecipe } from '../recipe/recipe'
import {
  DOUBLE_QUANT_BLOCK,
  doubleQuantizeAbsmax,
  dynamicMap8,
  NF4_LEVELS,
  nearestNf4,
  nf4,
  nf4BitsPerWeight,
  nf4Quantize,
} from './nf4'

const f = Math.fround

function normals(n: number, seed: number, scale = 1): Float32Array {
  const rng = new NormalStream(seed)
  return Float32Array.from({ length: n }, () => rng.next() * scale)
}

/** Standard normal CDF via erfc (Numerical Recipes' Chebyshev fit, |relative error| < 1.2e-7). */
function normalCdf(x: number): number {
  const z = Math.abs(x) / Math.SQRT2
  const t = 1 / (1 + 0.5 * z)
  const erfc =
    t *
    Math.exp(
      -z * z -
        1.26551223 +
        t *
          (1.00002368 +
            t *
              (0.37409196 +
                t *
                  (0.09678418 +
                    t *
                      (-0.18628806 +
                        t *
                          (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
    )
  return x >= 0 ? 1 - erfc / 2 : erfc / 2
}

function normalQuantile(p: number): number {
  let lo = -10,
    hi = 10
  for (let i = 0; i < 200; i++) {
    const mid = (lo + hi) / 2
    if (normalCdf(mid) < p) lo = mid
    else hi = mid
  }
  return (lo + hi) / 2
}

/** The nearest level by brute force over all 16 (first minimum, i.e. ties to the lower level). */
function bruteNearest(x: number): number {
  let best = 0
  for (let k = 1; k < 16; k++) if (Math.abs(x - NF4_LEVELS[k]) < Math.abs(x - NF4_LEVELS[best])) best = k
  return best
}

describe('NF4 levels', () => {
  it('are 16 sorted values with −1, 0 and 1, seven below zero and eight above', () => {
    expect(NF4_LEVELS).toHaveLength(16)
    for (let i = 1; i < 16; i++) expect(NF4_LEVELS[i]).toBeGreaterThan(NF4_LEVELS[i - 1])
    expect(NF4_LEVELS[0]).toBe(-1)
    expect(NF4_LEVELS[7]).toBe(0)
    expect(NF4_LEVELS[15]).toBe(1)
    expect(NF4_LEVELS.filter((v) => v < 0)).toHaveLength(7)
    expect(NF4_LEVELS.filter((v) => v > 0)).toHaveLength(8)
    for (const v of NF4_LEVELS) expect(f(v)).toBe(v)
  })

  it('are the QLoRA normal quantiles: ±Φ⁻¹ of evenly spaced probabilities from 0.9677083 to ½, over Φ⁻¹(0.9677083)', () => {
    // QLoRA eq. 4 as bitsandbytes builds it: 8 positive levels from linspace(δ, ½, 9) without ½,
    // 7 negative ones from linspace(δ, ½, 8) without ½, and 0; all divided by the largest.
    const delta = 0.9677083
    const top = normalQuantile(delta)
    const positive = Array.from({ length: 8 }, (_, i) => normalQuantile(delta - (i * (delta - 0.5)) / 8) / top)
    const negative = Array.from({ length: 7 }, (_, i) => -normalQuantile(delta - (i * (delta - 0.5)) / 7) / top)
    const expected = [...negative, 0, ...positive].sort((a, b) => a - b)
    for (let i = 0; i < 16; i++) expect(Math.abs(NF4_LEVELS[i] - expected[i])).toBeLessThan(2e-6)
  })

  it('picks the nearest level, checked by brute force, ties to the lower level', () => {
    const xs: number[] = []
    for (let i = 0; i <= 4000; i++) xs.push(-1 + i / 2000)
    for (let k = 0; k < 15; k++) {
      const mid = (NF4_LEVELS[k] + NF4_LEVELS[k + 1]) / 2
      xs.push(mid, mid + 1e-12, mid - 1e-12)
    }
    for (const x of xs) expect(nearestNf4(x), `x = ${x}`).toBe(bruteNearest(x))
  })
})

describe('NF4 quantization', () => {
  it('maps every value to absmax · level of its block, with the brute-force nearest level', () => {
    const n = 64 * 10 + 17 // a short last block
    const W = normals(n, 1, 0.02)
    W[100] = 0.3 // an outlier in block 1
    W.fill(0, 192, 256) // an all-zero block
    const original = W.slice()
    const absmax = nf4Quantize(W, { blockSize: 64, doubleQuant: false })
    expect(absmax).toHaveLength(11)
    for (let b = 0; b < 11; b++) {
      const block = original.subarray(b * 64, Math.min(n, (b + 1) * 64))
      const m = Math.max(...Array.from(block, Math.abs))
      expect(absmax[b]).toBe(m)
      for (let i = 0; i < block.length; i++) {
        const at = b * 64 + i
        const level = m > 0 ? bruteNearest(block[i] / m) : 7
        expect(W[at]).toBe(f(m * NF4_LEVELS[level]))
      }
    }
    // The block's absmax itself is exact (level ±1), and the zero block stays zero.
    expect(W[100]).toBe(original[100])
    expect(Array.from(W.subarray(192, 256)).every((v) => v === 0)).toBe(true)
  })

  it('the 8-bit dynamic type has 256 sorted values in [−1, 1], 0 and 1, mirrored below zero', () => {
    const code = dynamicMap8()
    expect(code).toHaveLength(256)
    for (let i = 1; i < 256; i++) expect(code[i]).toBeGreaterThanOrEqual(code[i - 1])
    expect(code[255]).toBe(1)
    expect(Array.from(code).includes(0)).toBe(true)
    const set = new Set(code)
    for (const v of code) if (v > 0 && v < 1) expect(set.has(-v)).toBe(true)
    // Smallest magnitude: 10⁻⁶ · (0.1 + 1) / 2.
    const smallest = Math.min(...Array.from(code).filter((v) => v > 0))
    expect(smallest).toBeCloseTo(0.55e-6, 10)
  })

  it('double quantization keeps the constants close and the weights almost as good', () => {
    const n = 64 * 700 // 700 blocks: three runs of 256 constants, the last short
    const W = normals(n, 2, 0.02)
    const plain = W.slice()
    const dq = W.slice()
    const absPlain = nf4Quantize(plain, { blockSize: 64, doubleQuant: false })
    const absDq = nf4Quantize(dq, { blockSize: 64, doubleQuant: true })
    let mean = 0
    for (const a of absPlain) mean += a / absPlain.length
    for (let r = 0; r * DOUBLE_QUANT_BLOCK < absPlain.length; r++) {
      const run = Array.from(absPlain.subarray(r * DOUBLE_QUANT_BLOCK, (r + 1) * DOUBLE_QUANT_BLOCK))
      const spread = Math.max(...run.map((a) => Math.abs(a - mean)))
      // The dynamic type's steps near ±1 are 0.9/64 wide: half of that is the worst rounding.
      run.forEach((a, i) =>
        expect(Math.abs(absDq[r * DOUBLE_QUANT_BLOCK + i] - a)).toBeLessThanOrEqual(spread * 0.0071 + 1e-7),
      )
    }
    // Every dequantized weight is still (dequantized constant) · level.
    for (let i = 0; i < n; i += 97) {
      const m = absDq[Math.floor(i / 64)]
      expect(NF4_LEVELS.some((l) => f(m * l) === dq[i])).toBe(true)
    }
    const err = (Q: Float32Array): number => Math.sqrt(Q.reduce((s, q, i) => s + (q - W[i]) ** 2, 0))
    expect(err(dq)).toBeLessThan(err(plain) * 1.02)
    expect(doubleQuantizeAbsmax(new Float32Array([0.5, 0.5]))).toEqual(new Float32Array([0.5, 0.5]))
  })

  it('storage: 4 + 32/64 bits per weight, 4 + 8/64 + 32/(64·256) with double quantization', () => {
    expect(nf4BitsPerWeight({ blockSize: 64, doubleQuant: false })).toBe(4.5)
    expect(nf4BitsPerWeight({ blockSize: 64, doubleQuant: true })).toBeCloseTo(4 + 0.125 + 32 / 16384, 12)
    expect(nf4.predict(nf4.parseParams({}, 'test'), 64, 64).bitsPerWeight).toBe(4.5)
  })

  it('rejects bad params and non-finite weights', () => {
    expect(() => nf4.parseParams({ block_size: 0 }, 'recipe step 1 (nf4)')).toThrow(/step 1 \(nf4\): params.block_size/)
    expect(() => nf4.parseParams({ blocksize: 64 }, 'step')).toThrow(/blocksize is not a parameter/)
    const W = new Float32Array([1, NaN, 2, 3])
    const l = {
      name: 'layers.0.mlp.up_proj.weight',
      role: 'up' as const,
      layer: 0,
      rows: 2,
      cols: 2,
      weight: W,
      params: nf4.parseParams({}, 's'),
    }
    return expect(
      nf4.compressGroup({ layer: 0, group: 'gate_up', linears: [l], input: null, pool: null as never }),
    ).rejects.toThrow(/up_proj.*non-finite/)
  })
})

describe.skipIf(!hasShared)(`NF4 on stories260K (${hasShared ? 'reference data present' : SKIP_SHARED})`, () => {
  let pool: WorkerPool
  let model: LoadedModel
  beforeAll(async () => {
    pool = await WorkerPool.create({ threads: 2 })
    model = await loadModel(shared('models/stories260K'))
  })
  afterAll(() => pool?.close())

  // The QLoRA comparison: 16 normal-quantile levels beat 16 evenly spaced ones under the same
  // symmetric absmax per block of 64 (the paper's NF4 vs Int4), and any 4-bit code loses to FP32.
  // All three on the same first 300 evaluation windows (a quarter of the text, ~5 s each).
  it('NF4 block 64 lands between FP32 and symmetric RTN w4 with the same block of 64', async () => {
    const ids = referenceIds('tinystories_eval')
    const ppl = async (view: LoadedModel): Promise<number> =>
      (await perplexity(pool, view, ids, { seqlen: 256, maxWindows: 300 })).ppl
    const nf4Run = await runRecipe(pool, model, validateRecipe({ steps: [{ method: 'nf4', params: {} }] }))
    expect(nf4Run.tensors).toHaveLength(35)
    for (const t of nf4Run.tensors) expect(t.bitsPerWeight).toBe(4.5)
    const int4Run = await runRecipe(
      pool,
      model,
      validateRecipe({ steps: [{ method: 'rtn', params: { bits: 4, group_size: 64, sym: true } }] }),
    )
    const [fp32, nf4Ppl, int4Ppl] = [await ppl(model), await ppl(nf4Run.view), await ppl(int4Run.view)]
    console.log(
      `first 300 windows: fp32 ${fp32.toFixed(4)}, nf4 b64 ${nf4Ppl.toFixed(4)}, rtn w4 g64 sym ${int4Ppl.toFixed(4)}`,
    )
    expect(Number.isFinite(nf4Ppl)).toBe(true)
    expect(nf4Ppl).toBeGreaterThan(fp32)
    expect(nf4Ppl).toBeLessThan(int4Ppl)
  })
})
