import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { perplexity } from '../../eval/perplexity'
import { fakeQuantPerTokenFp8 } from '../../forward/activation-quant'
import { loadModel, type LoadedModel } from '../../model/loaded-model'
import { f8e4m3ToF32 } from '../../numerics/float-encodings'
import { WorkerPool } from '../../pool/worker-pool'
import { NormalStream } from '../../synthetic/random'
import { hasShared, referenceIds, referenceRun, shared, SKIP_SHARED } from '../../testing/shared-data'
import { runRecipe } from '../pipeline'
import { validateRecipe } from '../recipe/recipe'
import { fp8, fp8BitsPerWeight, quantizeRowsFp8 } from './fp8'
import { rtnQuantize } from './rtn'

/** Every finite E4M3FN value, from the decoder: the grid the expectations below search by brute force. */
const E4M3_VALUES = Array.from({ length: 256 }, (_, b) => ({ b, v: f8e4m3ToF32(b) })).filter((e) =>
  Number.isFinite(e.v),
)

/** The nearest E4M3 value to x by exhaustive search (a tie goes to the even bit pattern). */
function nearestE4m3(x: number): number {
  let best = E4M3_VALUES[0]
  for (const e of E4M3_VALUES) {
    const d = Math.abs(e.v - x),
      bd = Math.abs(best.v - x)
    if (d < bd || (d === bd && (e.b & 1) === 0 && (best.b & 1) === 1)) best = e
  }
  return best.v
}

function relError(a: Float32Array, b: Float32Array): number {
  let num = 0,
    den = 0
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2
    den += b[i] ** 2
  }
  return Math.sqrt(num / den)
}

describe('fp8 (E4M3 per channel)', () => {
  const rows = 16,
    cols = 64
  const rng = new NormalStream(7)
  const W = Float32Array.from({ length: rows * cols }, () => rng.next() * 0.02)
  W[3] = 0.5 // an outlier sets its row's scale
  W.fill(0, 5 * cols, 6 * cols) // an all-zero row

  it('puts every weight on its row scale times the nearest E4M3 value', () => {
    const q = W.slice()
    const rec = quantizeRowsFp8(q, rows, cols)
    expect(rec.encoding).toBe('fp8-e4m3')
    for (let r = 0; r < rows; r++) {
      let m = 0
      for (let c = 0; c < cols; c++) m = Math.max(m, Math.abs(W[r * cols + c]))
      const scale = Math.fround(Math.max(m, 1e-5) / 448)
      expect(rec.scales[r]).toBe(scale)
      for (let c = 0; c < cols; c++) {
        const want = Math.fround(nearestE4m3(Math.fround(W[r * cols + c] / scale)) * scale)
        expect(q[r * cols + c]).toBe(want)
      }
    }
    // The row's largest magnitude lands on ±448 · scale; the zero row stays zero.
    expect(q[3]).toBe(Math.fround(448 * rec.scales[0]))
    expect(q.subarray(5 * cols, 6 * cols).every((v) => v === 0)).toBe(true)
  })

  it('costs 3 mantissa bits: its error lies between RTN w8 and RTN w4 per channel', () => {
    const errOf = (quant: (w: Float32Array) => void): number => {
      const w = W.slice()
      quant(w)
      return relError(w, W)
    }
    const e8 = errOf((w) => rtnQuantize(w, rows, cols, { bits: 8, groupSize: -1, sym: true, scaleDtype: 'f32' }))
    const e4 = errOf((w) => rtnQuantize(w, rows, cols, { bits: 4, groupSize: -1, sym: true, scaleDtype: 'f32' }))
    const ef = errOf((w) => quantizeRowsFp8(w, rows, cols))
    // A float grid's relative step is 2^-3 at every magnitude; int8's absolute step is absmax / 127, finer
    // for the bulk of a Gaussian row; int4's (absmax / 7) is coarser than both.
    expect(ef).toBeGreaterThan(e8)
    expect(ef).toBeLessThan(e4)
    expect(ef).toBeLessThan(Math.pow(2, -4)) // at most half a step of 2^-3 relative
  })

  it('quantizes activations per token on the same grid, clamped to ±448', () => {
    const x = Float32Array.from([1, -0.3, 0.02, 2, 0, 0, 0, 0])
    fakeQuantPerTokenFp8(x, 2, 4)
    const s = Math.fround(2 / 448)
    expect(Array.from(x.subarray(0, 4))).toEqual(
      [1, -0.3, 0.02, 2].map((v) => Math.fround(nearestE4m3(Math.fround(Math.fround(v) / s)) * s)),
    )
    expect(Array.from(x.subarray(4))).toEqual([0, 0, 0, 0])
  })

  it('has no parameters, storage 8 bits plus a 16-bit scale per row, and asks for fp8 activations', () => {
    expect(fp8.parseParams({}, 'test')).toEqual({})
    expect(() => fp8.parseParams({ bits: 4 }, 'step 1')).toThrow(/bits/)
    expect(fp8BitsPerWeight(64)).toBe(8.25)
    expect(fp8.runtime).toEqual({ activations: 'fp8-per-token' })
  })
})

describe.skipIf(!hasShared)(`fp8 on stories260K (${hasShared ? 'reference data present' : SKIP_SHARED})`, () => {
  let pool: WorkerPool
  let model: LoadedModel
  beforeAll(async () => {
    pool = await WorkerPool.create({ threads: 2 })
    model = await loadModel(shared('models/stories260K'))
  })
  afterAll(() => pool?.close())

  // E4M3 keeps 3 mantissa bits against int8's ~7 at a row's bulk, on the weights and on every Linear input:
  // a cost above SmoothQuant W8A8's (5.1662, +0.5%) but small next to RTN w4's (5.6734, +10%).
  it('W8A8-FP8 stays within 2% of the FP32 perplexity', async () => {
    const r = await runRecipe(pool, model, validateRecipe({ steps: [{ method: 'fp8' }] }), {})
    expect(r.tensors).toHaveLength(35)
    expect(r.records.size).toBe(35)
    expect(r.view.runtime).toEqual({ activations: 'fp8-per-token' })
    const ppl = (await perplexity(pool, r.view, referenceIds('tinystories_eval'), { seqlen: 256 })).ppl
    const fp32 = referenceRun('fp32').ppl.tinystories_eval['256'].ppl
    console.log(`fp8 W8A8: ppl ${ppl.toFixed(4)} (fp32 ${fp32.toFixed(4)})`)
    expect(Math.abs(ppl / fp32 - 1)).toBeLessThan(0.02)
  })
})
