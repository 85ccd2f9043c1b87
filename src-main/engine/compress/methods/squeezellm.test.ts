// SqueezeLLM's dense-and-sparse quantizer on hand-worked rows (no model needed): which weights stay
// sparse, each row's table, the codes the authors' loader expects, and the storage it counts.

import { describe, expect, it } from 'vitest'
import { WhittleError } from '../../errors'
import { roundToF16 } from '../../numerics/float-encodings'
import type { InputStats } from '../../calibration/capture'
import type { ModelView } from '../../model/model-view'
import type { WorkerPool } from '../../pool/worker-pool'
import { weightedKMeans1D } from '../quant/kmeans'
import {
  squeezellm,
  squeezeLlmBitsPerWeight,
  squeezeLlmFileBitsPerWeight,
  squeezeLlmQuantize,
  sparseSelection,
} from './squeezellm'

describe('SqueezeLLM dense-and-sparse', () => {
  it('keeps the largest |w|, then the most sensitive of the rest, sparse', () => {
    const W = Float32Array.from([0.1, -3, 0.2, 2, 0.3, -0.4, 0.5, 0.6, 0.7, 0.8])
    const s = [1, 1, 9, 1, 1, 1, 9, 1, 1, 1]
    // 10% → one outlier (−3), 20% sensitive → two of the rest by sensitivity: 0.2 and 0.5 (both 9;
    // the larger |w| first, but both are taken).
    expect(Array.from(sparseSelection(W, s, 0.1, 0.2))).toEqual([1, 2, 6])
    // Equal sensitivity everywhere: the tie goes to the larger |w| (2, then 0.8).
    expect(Array.from(sparseSelection(W, new Array(10).fill(1), 0.1, 0.2))).toEqual([1, 3, 9])
    expect(sparseSelection(W, s, 0, 0)).toHaveLength(0)
  })

  it('quantizes a row by hand: two centroids, one outlier and one sensitive weight in fp16', () => {
    const W = Float32Array.from([0, 0.1, 1, 1.1, 100, -0.05, 0.9, 0.2, 1.2, 0.05])
    const sens = [1, 1, 1, 1, 1, 1, 1, 10, 1, 1]
    const q = squeezeLlmQuantize(W, 1, 10, sens, { bits: 1, outlierFraction: 0.1, sensitiveFraction: 0.1 })
    expect(Array.from(q.sparseIndex)).toEqual([4, 7])
    // Dense values {−0.05, 0, 0.05, 0.1} and {0.9, 1, 1.1, 1.2}: means 0.025 and 1.05, stored fp16.
    const lo = roundToF16(0.025),
      hi = roundToF16(1.05)
    expect(Array.from(q.lut)).toEqual([lo, hi])
    // Sparse weights carry the code of the centroid nearest to 0 (the loader adds the sparse value to it).
    expect(Array.from(q.codes)).toEqual([0, 0, 1, 1, 0, 0, 1, 0, 1, 0])
    expect(Array.from(W)).toEqual([lo, lo, hi, hi, 100, lo, hi, roundToF16(0.2), hi, lo])
  })

  it('weights each row’s k-means by the sensitivity', () => {
    const rows = 3,
      cols = 40
    const W = Float32Array.from({ length: rows * cols }, (_, i) => Math.sin(i * 1.7) * (1 + (i % 7)))
    const sens = Float32Array.from({ length: rows * cols }, (_, i) => 1 + ((i * 13) % 5) ** 2)
    const original = W.slice()
    const q = squeezeLlmQuantize(W, rows, cols, sens, { bits: 3, outlierFraction: 0, sensitiveFraction: 0 })
    for (let r = 0; r < rows; r++) {
      const row = original.subarray(r * cols, (r + 1) * cols)
      const want = weightedKMeans1D(row, sens.subarray(r * cols, (r + 1) * cols), 8).centroids
      expect(Array.from(q.lut.subarray(r * 8, (r + 1) * 8))).toEqual(Array.from(want, roundToF16))
      for (let c = 0; c < cols; c++) {
        const w = W[r * cols + c]
        // every weight is its code's centroid, and that centroid is the nearest one
        expect(w).toBe(q.lut[r * 8 + q.codes[r * cols + c]])
        for (let j = 0; j < 8; j++)
          expect(Math.abs(row[c] - w)).toBeLessThanOrEqual(Math.abs(row[c] - q.lut[r * 8 + j]))
      }
    }
    // Different weights give different tables.
    const W2 = original.slice()
    const q2 = squeezeLlmQuantize(W2, rows, cols, new Float32Array(rows * cols).fill(1), {
      bits: 3,
      outlierFraction: 0,
      sensitiveFraction: 0,
    })
    expect(Array.from(q2.lut)).not.toEqual(Array.from(q.lut))
  })

  it('counts codes, one fp16 table per row and 48 bits per sparse weight', () => {
    // 64 × 64, 3 bits, 18 sparse: 3 + (64·8·16 + 18·48) / 4096
    expect(squeezeLlmBitsPerWeight(3, 64, 64, 18)).toBe(3 + (8192 + 864) / 4096)
    const p = squeezellm.parseParams({ bits: 3 }, 'test')
    expect(p).toMatchObject({ bits: 3, sensitivity: 'fisher', outlierFraction: 0.004, sensitiveFraction: 0.0005 })
    // predict: round(0.004·4096) + round(0.0005·4096) = 16 + 2 sparse weights
    expect(squeezellm.predict(p, 64, 64).bitsPerWeight).toBe(squeezeLlmBitsPerWeight(3, 64, 64, 18))
  })

  it('refuses fractions that leave less than half the weights dense', () => {
    expect(() => squeezellm.parseParams({ outlier_fraction: 0.4, sensitive_fraction: 0.2 }, 'step 1')).toThrow(
      WhittleError,
    )
    expect(() => squeezellm.parseParams({ sensitivity: 'gradient' }, 'step 1')).toThrow(/fisher, hessian/)
  })

  it('falls back to the Hessian diagonal where the model cannot be trained, and says why', async () => {
    const p = squeezellm.parseParams({ bits: 2, outlier_fraction: 0, sensitive_fraction: 0 }, 'step 1')
    const rows = 2,
      cols = 8
    const W = Float32Array.from({ length: rows * cols }, (_, i) => ((i * 7) % 16) / 4 - 2)
    const target = { name: 'w', rows, cols, params: p, read: async () => W.slice() }
    // A GPT-2 model: the training engine refuses it before touching anything else.
    const view = { arch: { family: 'gpt2' }, files: { path: '/models/gpt2' } } as unknown as ModelView
    await squeezellm.prepareStep!([target], { view, pool: {} as WorkerPool, windows: [new Int32Array(4)] })
    expect(p.fisher).toBeUndefined()
    expect(p.fallback).toMatch(/^Hessian diagonal instead of the Fisher: .*Llama family/)
    const sumSq = Float64Array.from([1, 1, 1, 100, 1, 1, 1, 1])
    const input = { channels: cols, sumSq } as unknown as InputStats
    const linear = { name: 'w', role: 'q' as const, layer: 0, rows, cols, weight: W.slice(), params: p }
    const [o] = await squeezellm.compressGroup({
      layer: 0,
      group: 'qkv',
      linears: [linear],
      input,
      pool: {} as WorkerPool,
    })
    expect(o.note).toBe(p.fallback)
    // Each row's table is the k-means weighted by its columns' Σx² (column 3 counts 100 times).
    for (let r = 0; r < rows; r++) {
      const row = W.subarray(r * cols, (r + 1) * cols)
      const weighted = Array.from(weightedKMeans1D(row, sumSq, 4).centroids, roundToF16)
      expect(o.grid?.kind === 'centroids' && o.grid.rows[r].centroids).toEqual(weighted)
      expect(weighted).not.toEqual(Array.from(weightedKMeans1D(row, null, 4).centroids, roundToF16))
    }
  })

  describe('shared tables (lut_rows)', () => {
    // Rows of very different range (row r scaled by 2^r), as the rows of one Linear are.
    const rows = 6,
      cols = 48
    const base = (): Float32Array =>
      Float32Array.from({ length: rows * cols }, (_, i) => Math.sin(i * 2.3) * 2 ** Math.floor(i / cols))
    const sens = Float32Array.from({ length: rows * cols }, (_, i) => 1 + ((i * 7) % 3))
    /** Mean over the rows of each row's weighted squared error relative to its weighted squared norm. */
    const weightedError = (a: Float32Array, b: Float32Array): number => {
      let sum = 0
      for (let r = 0; r < rows; r++) {
        let e = 0,
          n = 0
        for (let i = r * cols; i < (r + 1) * cols; i++) {
          e += sens[i] * (a[i] - b[i]) ** 2
          n += sens[i] * a[i] ** 2
        }
        sum += e / n
      }
      return sum / rows
    }

    it('decodes every row to its fp16 scale times the shared table, each weight to its nearest entry', () => {
      const W = base()
      const original = W.slice()
      const p = { bits: 2, outlierFraction: 0, sensitiveFraction: 0, lutRows: 4, lutDtype: 'f16' as const }
      const q = squeezeLlmQuantize(W, rows, cols, sens, p)
      expect(q.lutRows).toBe(4)
      expect(q.tables).toHaveLength(2 * 4) // ⌈6 / 4⌉ tables of 4 entries
      expect(q.rowScales).toHaveLength(rows)
      for (let r = 0; r < rows; r++) {
        const s = q.rowScales![r]
        expect(s).toBeGreaterThan(0)
        expect(roundToF16(s)).toBe(s)
        const t = Math.floor(r / 4)
        const decoded = Array.from(q.tables.subarray(t * 4, t * 4 + 4), (c) => roundToF16(s * c) + 0)
        expect(Array.from(q.lut.subarray(r * 4, r * 4 + 4))).toEqual(decoded)
        for (let c = 0; c < cols; c++) {
          const at = r * cols + c
          expect(W[at]).toBe(decoded[q.codes[at]])
          for (const v of decoded)
            expect(Math.abs(original[at] - W[at])).toBeLessThanOrEqual(Math.abs(original[at] - v))
        }
      }
      // lut_rows 0: one table for the whole tensor.
      const whole = squeezeLlmQuantize(base(), rows, cols, sens, { ...p, lutRows: 0 })
      expect(whole.lutRows).toBe(rows)
      expect(whole.tables).toHaveLength(4)
    })

    it('follows each row’s range, where an unscaled table pooled over the rows cannot', () => {
      const original = base()
      const scaled = base()
      squeezeLlmQuantize(scaled, rows, cols, sens, {
        bits: 3,
        outlierFraction: 0,
        sensitiveFraction: 0,
        lutRows: 0,
        lutDtype: 'f16',
      })
      // The independent baseline: one k-means table over all weights, no scales.
      const pooled = weightedKMeans1D(original, sens, 8).centroids
      const plain = Float32Array.from(original, (w) => {
        let best = pooled[0]
        for (const c of pooled) if (Math.abs(w - c) < Math.abs(w - best)) best = c
        return best
      })
      expect(weightedError(original, scaled)).toBeLessThan(0.25 * weightedError(original, plain))
    })

    it('stores int8 tables as integer multiples of one fp16 scale, rounded to fp16', () => {
      const W = base()
      const q = squeezeLlmQuantize(W, rows, cols, sens, {
        bits: 3,
        outlierFraction: 0,
        sensitiveFraction: 0,
        lutRows: 0,
        lutDtype: 'int8',
      })
      const absmax = Math.max(...Array.from(q.tables, Math.abs))
      const step = roundToF16(absmax / 127)
      for (const c of q.tables) {
        const n = Math.round(c / step)
        expect(Math.abs(n)).toBeLessThanOrEqual(127)
        expect(c).toBe(roundToF16(Math.fround(n * step)) + 0)
      }
    })

    it('counts one table per run of rows, an fp16 scale per row, and the file’s per-row tables apart', () => {
      // 64 × 64 at 3 bits, one f16 table, 64 row scales, no sparse weights
      expect(squeezeLlmBitsPerWeight(3, 64, 64, 0, { lutRows: 0, lutDtype: 'f16' })).toBe(3 + (128 + 64 * 16) / 4096)
      // 172 × 64 by 64 rows: 3 tables; int8 tables cost 8·8 + 16 bits each
      expect(squeezeLlmBitsPerWeight(3, 172, 64, 5, { lutRows: 64, lutDtype: 'int8' })).toBe(
        3 + (3 * 80 + 172 * 16 + 5 * 48) / (172 * 64),
      )
      // lut_rows 1 is the paper's count, with no row scales
      expect(squeezeLlmBitsPerWeight(3, 64, 64, 0, { lutRows: 1, lutDtype: 'f16' })).toBe(
        squeezeLlmBitsPerWeight(3, 64, 64, 0),
      )
      // The authors' file: fp16 table per row; CSR (rows + 1 pointers, nnz, int32 column + f32 value each)
      expect(squeezeLlmFileBitsPerWeight(3, 64, 64, 0)).toBe(3 + (64 * 8 * 16) / 4096)
      expect(squeezeLlmFileBitsPerWeight(3, 64, 64, 10)).toBe(3 + (64 * 8 * 16 + 66 * 32 + 10 * 64) / 4096)
      const p = squeezellm.parseParams({ bits: 3, lut_rows: 0, outlier_fraction: 0, sensitive_fraction: 0 }, 't')
      expect(p).toMatchObject({ lutRows: 0, lutDtype: 'f16' })
      expect(squeezellm.predict(p, 64, 172)).toEqual({
        bitsPerWeight: 3 + (128 + 64 * 16) / (64 * 172),
        format: 'lut per tensor w3 + 0% fp16',
      })
      expect(() => squeezellm.parseParams({ lut_rows: -1 }, 'step 1')).toThrow(WhittleError)
      expect(() => squeezellm.parseParams({ lut_dtype: 'int4' }, 'step 1')).toThrow(/f16, int8/)
    })
  })
})
