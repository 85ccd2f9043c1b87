// The pipeline's calibration hook on the real stories260K, against captureCalibration (capture.ts: the
// same forward pass, statistics accumulated by its own JS loop): the Hessians from kernel memory and
// every other statistic must be the same bits. The row sample is checked against the statistics it was
// drawn from. On 1 worker and on 2, against the reference run inline: with workers the Llama block takes
// whole windows through its segments and the hooks see each Linear's input between them; inline it runs op
// by op.

import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createForward } from '../forward'
import { loadModel, type LoadedModel } from '../model/loaded-model'
import { WorkerPool } from '../pool/worker-pool'
import { hasShared, referenceIds, shared, SKIP_SHARED } from '../testing/shared-data'
import { captureCalibration, type InputGroup, type LayerStats } from './capture'
import { captureLayerInputs, type LayerInputOptions, type SampledInputStats } from './layer-inputs'
import { calibrationWindows } from './windows'

const GROUPS: InputGroup[] = ['qkv', 'o', 'gate_up', 'down']

describe.skipIf(!hasShared).each([1, 2])(
  `captureLayerInputs on stories260K, %i worker(s) (${hasShared ? 'reference data present' : SKIP_SHARED})`,
  (threads) => {
    let pool: WorkerPool
    let model: LoadedModel
    let windows: Int32Array[]
    let expected: (LayerStats | null)[]
    beforeAll(async () => {
      pool = await WorkerPool.create({ threads })
      model = await loadModel(shared('models/stories260K'))
      windows = calibrationWindows(referenceIds('tinystories_calib'), { samples: 4, seqlen: 32, seed: 0 })
      // The reference runs inline (no workers): the block op by op, so the paths differ as well as the loops.
      const inline = await WorkerPool.create({ threads: 0 })
      try {
        expected = await captureCalibration(inline, model, windows, { hessian: true })
      } finally {
        await inline.close()
      }
    })
    afterAll(() => pool?.close())

    /** Every layer's capture through the original model, in order (block() updates the hidden states). */
    async function captureAll(
      options: Omit<LayerInputOptions, 'windows'>,
    ): Promise<Map<InputGroup, SampledInputStats>[]> {
      const forward = await createForward(pool, model)
      try {
        const hidden = await forward.embed(windows)
        const out: Map<InputGroup, SampledInputStats>[] = []
        for (let layer = 0; layer < model.arch.layers; layer++) {
          out.push(
            await captureLayerInputs(pool, forward, layer, hidden, windows[0].length, {
              ...options,
              windows: windows.length,
            }),
          )
        }
        return out
      } finally {
        forward.close()
      }
    }

    it('gives the same bits as captureCalibration, Hessians from kernel memory included', async () => {
      const got = await captureAll({ groups: new Set(GROUPS), hessian: true, sampleRows: 16 })
      expect(got).toHaveLength(model.arch.layers)
      for (const [layer, stats] of got.entries()) {
        expect([...stats.keys()].sort()).toEqual([...GROUPS].sort())
        for (const group of GROUPS) {
          const s = stats.get(group)!,
            e = expected[layer]![group]
          expect(s.channels).toBe(e.channels)
          expect(s.tokens).toBe(4 * 32)
          expect(s.windows).toBe(4)
          expect(s.absmax).toEqual(e.absmax)
          expect(s.sumAbs).toEqual(e.sumAbs)
          expect(s.sumSq).toEqual(e.sumSq)
          expect(s.hessian).toEqual(e.hessian)
        }
      }
    })

    it('without the output, records the same bits and leaves its input as it was', async () => {
      // Each layer's input comes from the full block of the layer before, as the sequential pipeline
      // gives it; the capture runs on a copy with its output, and on the input itself without.
      const forward = await createForward(pool, model)
      try {
        const hidden = await forward.embed(windows)
        for (let layer = 0; layer < model.arch.layers; layer++) {
          const options = { groups: new Set(GROUPS), hessian: true, sampleRows: 16, windows: windows.length }
          const fullOutput = hidden.slice()
          const full = await captureLayerInputs(pool, forward, layer, fullOutput, windows[0].length, options)
          const before = hidden.slice()
          const inputsOnly = await captureLayerInputs(pool, forward, layer, hidden, windows[0].length, {
            ...options,
            outputNeeded: false,
          })
          for (const group of GROUPS) {
            const x = full.get(group)!,
              y = inputsOnly.get(group)!
            expect(y.hessian).toEqual(x.hessian)
            expect(y.absmax).toEqual(x.absmax)
            expect(y.sumSq).toEqual(x.sumSq)
            expect(y.sample).toEqual(x.sample)
          }
          expect(hidden).toEqual(before)
          expect(fullOutput).not.toEqual(before)
          await forward.block(layer, hidden, windows[0].length)
        }
      } finally {
        forward.close()
      }
    })

    it('keeps a row sample drawn from the input, and records only the groups asked for', async () => {
      const all = await captureAll({ groups: new Set<InputGroup>(['down']), hessian: false, sampleRows: 1 << 20 })
      const few = await captureAll({ groups: new Set<InputGroup>(['down']), hessian: false, sampleRows: 8 })
      for (let layer = 0; layer < model.arch.layers; layer++) {
        expect([...all[layer].keys()]).toEqual(['down'])
        const s = all[layer].get('down')!
        expect(s.hessian).toBeNull()
        const K = s.channels
        // A sample larger than the input holds every row: its per-channel absmax is the statistic's.
        expect(s.sampleRows).toBe(s.tokens)
        const absmax = new Float32Array(K)
        for (let t = 0; t < s.sampleRows; t++)
          for (let c = 0; c < K; c++) absmax[c] = Math.max(absmax[c], Math.abs(s.sample[t * K + c]))
        expect(absmax).toEqual(s.absmax)
        // A small sample holds 8 of those rows, the first one first.
        const f = few[layer].get('down')!
        expect(f.sampleRows).toBe(8)
        expect(f.sample.length).toBe(8 * K)
        const rows = new Set(
          Array.from({ length: s.sampleRows }, (_, t) => s.sample.subarray(t * K, (t + 1) * K).join(',')),
        )
        for (let t = 0; t < 8; t++) expect(rows.has(f.sample.subarray(t * K, (t + 1) * K).join(','))).toBe(true)
        expect(f.sample.subarray(0, K)).toEqual(s.sample.subarray(0, K))
      }
    })
  },
)
