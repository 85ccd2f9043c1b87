// Probes of the real stories260K, checked against independent paths through the model, plus the
// algebra of the pieces (angular distance, rank correlation, SmoothQuant ranges).

import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { calibrationWindows } from '../calibration/windows'
import { captureCalibration } from '../calibration/capture'
import { createForward } from '../forward'
import { loadModel } from '../model/loaded-model'
import { WorkerPool } from '../pool/worker-pool'
import { hasShared, referenceIds, shared, SKIP_SHARED } from '../testing/shared-data'
import { activationReport, smoothingRanges } from './activation-report'
import { meanOf } from './baseline-run'
import { headImportance } from './head-importance'
import { headWeights } from './head-weights'
import { layerImportance, meanAngularDistance } from './layer-importance'
import { ranks, spearman } from './rank-correlation'

describe('probe algebra', () => {
  it('angular distance: 0 for equal, 0.5 for orthogonal, 1 for opposite vectors', () => {
    const a = Float32Array.from([1, 0, 0, 1])
    expect(meanAngularDistance(a, Float32Array.from([2, 0, 0, 3]), 2)).toBeCloseTo(0, 12)
    expect(meanAngularDistance(Float32Array.from([1, 0]), Float32Array.from([0, 5]), 2)).toBeCloseTo(0.5, 12)
    expect(meanAngularDistance(Float32Array.from([1, 2]), Float32Array.from([-1, -2]), 2)).toBeCloseTo(1, 12)
  })

  it('spearman: ties get average ranks; monotone maps give ±1', () => {
    expect(ranks([10, 20, 20, 5])).toEqual([2, 3.5, 3.5, 1])
    expect(spearman([1, 2, 3, 4], [1, 4, 9, 16])).toBeCloseTo(1, 12)
    expect(spearman([1, 2, 3, 4], [4, 3, 2, 1])).toBeCloseTo(-1, 12)
  })

  it('SmoothQuant ranges: α=0 puts all difficulty on activations, α=1 on weights', () => {
    const x = [10, 1, 0.5],
      w = [0.1, 0.2, 0.4]
    const r = smoothingRanges(x, w, [0, 1])
    // α=0: s=1/w → activations x·w, weights 1.  α=1: s=x → activations 1, weights w·x.
    expect(r.activationRange[0]).toBeCloseTo(Math.max(...x.map((v, i) => v * w[i])), 12)
    expect(r.weightRange[0]).toBeCloseTo(1, 12)
    expect(r.activationRange[1]).toBeCloseTo(1, 12)
    expect(r.weightRange[1]).toBeCloseTo(Math.max(...x.map((v, i) => v * w[i])), 12)
  })
})

describe.skipIf(!hasShared)(`probes on stories260K (${hasShared ? 'reference data present' : SKIP_SHARED})`, () => {
  let pool: WorkerPool
  beforeAll(async () => {
    pool = await WorkerPool.create({ threads: 2 })
  })
  afterAll(() => pool?.close())
  const windows = (): Int32Array[] =>
    calibrationWindows(referenceIds('tinystories_calib'), { samples: 4, seqlen: 64, seed: 0 })

  it('head ablation from cached block inputs equals a full forward pass with the head zeroed', async () => {
    const model = await loadModel(shared('models/stories260K'))
    const forward = await createForward(pool, model)
    try {
      const w = windows()
      const r = await headImportance(forward, model, w)
      expect(r.ablation).toHaveLength(5)
      expect(r.ablation[0]).toHaveLength(8)
      const [l, h] = [3, 5]
      const hd = model.arch.headDim,
        qDim = model.arch.heads * hd
      const full = meanOf(
        await forward.windowNll(w, {
          hooks: {
            attentionOutput(layer, att, M) {
              if (layer === l) for (let t = 0; t < M; t++) att.fill(0, t * qDim + h * hd, t * qDim + (h + 1) * hd)
            },
          },
        }),
      )
      expect(full - r.baselineNll).toBeCloseTo(r.ablation[l][h], 10)
      expect(r.baselineNll).toBeCloseTo(meanOf(await forward.windowNll(w)), 10)
      for (const row of r.proxy) for (const v of row) expect(v).toBeGreaterThan(0)
    } finally {
      forward.close()
    }
  })

  it('skipping a block from cached inputs equals a forward pass without that block', async () => {
    const model = await loadModel(shared('models/stories260K'))
    const forward = await createForward(pool, model)
    try {
      const w = windows()
      const r = await layerImportance(forward, w)
      const hidden = await forward.embed(w)
      for (let l = 0; l < 5; l++) if (l !== 2) await forward.block(l, hidden, 64)
      const skipped = meanOf(await forward.nll(hidden, w))
      expect(skipped - r.baselineNll).toBeCloseTo(r.skipDelta[2], 10)
      for (const d of r.angularDistance) expect(d).toBeGreaterThan(0)
    } finally {
      forward.close()
    }
  })

  it('activation report: outliers are exactly the channels above threshold, persistence counts them', async () => {
    const model = await loadModel(shared('models/stories260K'))
    const w = windows()
    const layers = (await captureCalibration(pool, model, w)).map((l) => l!)
    const report = await activationReport(model, layers, 64, 2)
    expect(report.inputs).toHaveLength(5 * 4)
    const counts = new Array(64).fill(0)
    for (const inp of report.inputs) {
      expect(inp.outliers).toEqual(inp.absmax.flatMap((v, j) => (v > 2 ? [j] : [])))
      if (inp.group === 'qkv' || inp.group === 'gate_up') for (const j of inp.outliers) counts[j]++
    }
    expect(report.persistence.counts).toEqual(counts)
    expect(report.smoothing).toHaveLength(10)
  })

  it('head weights: GQA maps head 5 to KV head 2 and slices the right rows', async () => {
    const model = await loadModel(shared('models/stories260K'))
    const hw = await headWeights(model, 1, 5)
    expect(hw.slices.map((s) => s.role)).toEqual(['q', 'k', 'v', 'o'])
    expect(hw.slices[0].sourceShape).toEqual([8, 64])
    expect(hw.slices[3].sourceShape).toEqual([64, 8])
    await expect(headWeights(model, 9, 0)).rejects.toThrow(/outside/)
  })
})
