// Calibration capture on the real stories260K, checked against an independent computation of layer 0's
// first Linear input (RMSNorm of the token embeddings, in f64) and against its own algebra.

import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { readTensorF32 } from '../formats/read'
import { loadModel } from '../model/loaded-model'
import { WorkerPool } from '../pool/worker-pool'
import { hasShared, referenceIds, shared, SKIP_SHARED } from '../testing/shared-data'
import { tensorName } from '../arch'
import { accumulateInput, captureCalibration, emptyInputStats, finishHessian } from './capture'
import { calibrationWindows } from './windows'

let pool: WorkerPool
beforeAll(async () => {
  pool = await WorkerPool.create({ threads: 2 })
})
afterAll(() => pool?.close())

describe('accumulateInput', () => {
  it('keeps absmax, Σ|x|, Σx² and a symmetric Hessian whose diagonal is Σx² (to f32 precision)', () => {
    const K = 5,
      M = 7
    const x = Float32Array.from({ length: M * K }, (_, i) => Math.sin(i * 1.7) * (i % 3))
    const s = emptyInputStats(K, true)
    accumulateInput(s, x, M, K)
    finishHessian(s)
    for (let i = 0; i < K; i++) {
      let mx = 0,
        sq = 0
      for (let t = 0; t < M; t++) {
        mx = Math.max(mx, Math.abs(x[t * K + i]))
        sq += x[t * K + i] ** 2
      }
      expect(s.absmax[i]).toBe(Math.fround(mx))
      expect(s.sumSq[i]).toBeCloseTo(sq, 12)
      // The Hessian sums in f32 within a chunk of tokens (kernels/reference/hessian.ts): f32 precision.
      expect(Math.abs(s.hessian![i * K + i] - sq)).toBeLessThan(1e-6 * Math.max(1, sq))
      for (let j = 0; j < K; j++) expect(s.hessian![i * K + j]).toBe(s.hessian![j * K + i])
    }
    expect(s.tokens).toBe(M)
  })
})

describe.skipIf(!hasShared)(
  `calibration capture on stories260K (${hasShared ? 'reference data present' : SKIP_SHARED})`,
  () => {
    it('layer 0 q/k/v input statistics match RMSNorm(embeddings) computed independently', async () => {
      const model = await loadModel(shared('models/stories260K'))
      const windows = calibrationWindows(referenceIds('tinystories_calib'), { samples: 4, seqlen: 32, seed: 0 })
      const layers = await captureCalibration(pool, model, windows, { hessian: true })
      expect(layers).toHaveLength(5)
      const s = layers[0]!.qkv
      expect(s.tokens).toBe(4 * 32)
      const H = 64
      const embed = await readTensorF32(model.entry(tensorName(model.arch, null, 'embed')!))
      const norm = await readTensorF32(model.entry(tensorName(model.arch, 0, 'attn_norm')!))
      const absmax = new Float64Array(H)
      for (const w of windows)
        for (const tok of w) {
          const row = embed.subarray(tok * H, (tok + 1) * H)
          let ms = 0
          for (const v of row) ms += v * v
          const inv = 1 / Math.sqrt(ms / H + 1e-5)
          for (let i = 0; i < H; i++) absmax[i] = Math.max(absmax[i], Math.abs(row[i] * inv * norm[i]))
        }
      for (let i = 0; i < H; i++) expect(Math.abs(s.absmax[i] - absmax[i])).toBeLessThan(1e-5 * Math.max(1, absmax[i]))
      // Every later layer recorded all four inputs with the right widths.
      for (const l of layers) {
        expect(l!.down.channels).toBe(172)
        expect(l!.o.channels).toBe(64)
        expect(l!.down.hessian).toHaveLength(172 * 172)
      }
    })
  },
)
