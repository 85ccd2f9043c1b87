// SqueezeLLM and GOBO on the real stories260K against the relations (#16): at 3 bits SqueezeLLM
// beats GPTQ w3 in perplexity at no more bits per weight, GOBO beats RTN w3 per channel.
// - Always on (seconds): 16 of the reference calibration windows and the first 48 eval windows; the
//   baselines are measured here on the same windows, so each relation compares like with like.
// - WHITTLE_SLOW=1: the full protocol (128 × 256 calibration, the whole eval text) against the
//   references' numbers, GPTQ w3 8.9452 and RTN w3 13.7466. Measured 2026-12-03: SqueezeLLM w3 8.128
//   (Fisher) and 7.688 (Σx²) at 4.91 bits per weight; GOBO w3 11.705 at 3.51; Whittle's GPTQ w3 8.991,
//   RTN w3 13.805 (fp16 scales). About 10 minutes on the shared 2-core machine.
// Bits per weight are counted honestly: at 3 bits a per-row table of 8 fp16 centroids costs 128 bits
// per row, 2 bits per weight on the 64-column Linears of this model, so the paper's SqueezeLLM stores
// more bits per weight here than GPTQ w3. The preset squeezellm-w3-shared (one int8 table per Linear,
// an fp16 scale per row, no sparse part) stores fewer, and still beats GPTQ w3 per channel. Measured
// 2026-12-03, full protocol: 8.772 at 3.224 bits per weight against GPTQ w3 8.9452 (Whittle's 8.991) at
// 3.252; not Whittle's GPTQ w3 g128 (8.456 at 3.261).

import { readFileSync } from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { perplexity } from '../eval/perplexity'
import { readTensorF32 } from '../formats/read'
import { loadModel, type LoadedModel } from '../model/loaded-model'
import { WorkerPool } from '../pool/worker-pool'
import { hasShared, referenceIds, repoRoot, shared, SKIP_SHARED } from '../testing/shared-data'
import { scaled } from '../testing/time-factor'
import { runRecipe } from './pipeline'
import { getMethod } from './methods'
import type { PipelineResult, TensorOutcome } from './pipeline-types'
import { parseRecipeText, validateRecipe } from './recipe/recipe'
import { referenceCalibrationWindows } from '../calibration/testing/reference-windows'

const SLOW = process.env.WHITTLE_SLOW === '1'
/** Eval windows of the always-on variant. */
const EVAL_WINDOWS = 48
/** The reference perplexities (TinyStories eval, seqlen 256, the whole text). */
const GPTQ_W3 = 8.9452
const RTN_W3 = 13.7466

/** Storage-weighted mean bits per weight over a result's Linears (as stored, or as `bitsOf` counts them). */
function meanBits(r: PipelineResult, bitsOf = (t: TensorOutcome): number => t.bitsPerWeight): number {
  let bits = 0,
    n = 0
  for (const t of r.tensors) {
    const m = t.shape[0] * t.shape[1]
    bits += bitsOf(t) * m
    n += m
  }
  return bits / n
}

/** What GPTQ w3 g128 stores for a Linear of this shape, by the method's own count. */
function gptqG128Bits(t: TensorOutcome): number {
  const gptq = getMethod('gptq', 'test')
  return gptq.predict(gptq.parseParams({ bits: 3, group_size: 128 }, 'test'), t.shape[0], t.shape[1]).bitsPerWeight
}

describe.skipIf(!hasShared)(
  `SqueezeLLM and GOBO on stories260K (${hasShared ? 'reference data present' : SKIP_SHARED})`,
  () => {
    let pool: WorkerPool
    let model: LoadedModel
    let windows: Int32Array[]
    const evalIds = (): Int32Array => referenceIds('tinystories_eval')
    const run = (method: string, params: Record<string, unknown>): Promise<PipelineResult> =>
      runRecipe(pool, model, validateRecipe({ steps: [{ method, params }] }), { windows })
    // The GPTQ baselines, run once and shared by the SqueezeLLM cases.
    const baselines = new Map<string, Promise<PipelineResult>>()
    const baseline = (method: string, params: Record<string, unknown>): Promise<PipelineResult> => {
      const key = JSON.stringify([method, params])
      if (!baselines.has(key)) baselines.set(key, run(method, params))
      return baselines.get(key)!
    }
    const ppl = async (r: PipelineResult | LoadedModel, maxWindows?: number): Promise<number> =>
      (await perplexity(pool, 'view' in r ? r.view : r, evalIds(), { seqlen: 256, maxWindows })).ppl

    beforeAll(async () => {
      pool = await WorkerPool.create({ threads: 2 })
      model = await loadModel(shared('models/stories260K'))
      const all = referenceCalibrationWindows()
      windows = SLOW ? all : all.slice(0, 16)
    })
    afterAll(() => pool?.close())

    it(
      'SqueezeLLM w3 (Fisher) beats GPTQ w3 on the same windows, with every table, code and sparse weight counted',
      async () => {
        const sq = await run('squeezellm', { bits: 3 })
        const gptq = await baseline('gptq', { bits: 3 })
        expect(sq.tensors).toHaveLength(35)
        for (const t of sq.tensors) {
          const [rows, cols] = t.shape
          const n = rows * cols
          const sparse = Math.round(0.004 * n) + Math.round(0.0005 * n)
          // codes + one table of 8 fp16 centroids per row + (fp16 value, 32-bit index) per sparse weight
          expect(t.bitsPerWeight).toBeCloseTo(3 + (rows * 8 * 16 + sparse * 48) / n, 12)
          expect(t.note).toBeUndefined() // the Fisher was computed: no Hessian fallback
          if (t.grid?.kind !== 'centroids') throw new Error(`${t.name}: no centroid grid`)
          expect(t.grid.rows.length).toBe(Math.min(8, rows))
          for (const row of t.grid.rows) expect(row.centroids).toHaveLength(8)
          expect(t.grid.outlierFraction).toBeCloseTo(sparse / n, 12)
          // each row holds only its table's values, except the sparse weights
          const w = sq.view.replaced().get(t.name)!
          let offTable = 0
          for (const row of t.grid.rows) {
            const table = new Set(row.centroids)
            for (let c = 0; c < cols; c++) if (!table.has(w[row.row * cols + c])) offTable++
          }
          expect(offTable).toBeLessThanOrEqual(sparse)
        }
        const [pSq, pGptq] = [
          await ppl(sq, SLOW ? undefined : EVAL_WINDOWS),
          await ppl(gptq, SLOW ? undefined : EVAL_WINDOWS),
        ]
        expect(pSq).toBeLessThan(pGptq)
        if (SLOW) expect(pSq).toBeLessThan(GPTQ_W3)
        // The honest count: on 64 columns the tables alone cost 2 bits per weight.
        const g128 = meanBits(sq, gptqG128Bits)
        expect(meanBits(sq)).toBeGreaterThan(g128 + 1.5)
        console.log(
          `SqueezeLLM w3: ppl ${pSq.toFixed(4)} at ${meanBits(sq).toFixed(3)} bpw; GPTQ w3 ${pGptq.toFixed(4)} at ${meanBits(gptq).toFixed(3)} bpw (g128 ${g128.toFixed(3)} bpw)`,
        )
      },
      scaled(SLOW ? 900_000 : 180_000),
    )

    it(
      'SqueezeLLM w3 with shared tables (the preset) beats GPTQ w3 at no more bits per weight',
      async () => {
        const file = path.join(repoRoot, 'resources/recipes/squeezellm-w3-shared.yaml')
        const [step] = parseRecipeText(readFileSync(file, 'utf8'), file).steps
        expect(step.method).toBe('squeezellm')
        const sq = await run('squeezellm', step.params as Record<string, unknown>)
        const gptq = await baseline('gptq', { bits: 3 })
        expect(sq.tensors).toHaveLength(35)
        for (const t of sq.tensors) {
          const [rows, cols] = t.shape
          // codes + one table of 8 int8 centroids and its fp16 scale + an fp16 scale per row; nothing sparse
          expect(t.bitsPerWeight).toBeCloseTo(3 + (8 * 8 + 16 + rows * 16) / (rows * cols), 12)
          // The authors' file holds an fp16 table per row instead: 3 + 128 / cols.
          expect(t.note).toContain(`fp16 per row: ${(3 + 128 / cols).toFixed(3)} bits per weight in that file`)
          // Every row takes at most 8 values, its scale times the tensor's table: rows' value sets are
          // multiples of one another, each by the ratio of the rows' largest values.
          const w = sq.view.replaced().get(t.name)!
          const levels = (r: number): number[] =>
            [...new Set(w.subarray(r * cols, (r + 1) * cols))].sort((a, b) => a - b)
          for (let r = 0; r < rows; r++) expect(levels(r).length).toBeLessThanOrEqual(8)
          const [a, b] = [levels(0), levels(rows - 1)]
          if (a.length === 8 && b.length === 8) {
            const ratio = b[7] / a[7]
            for (let j = 0; j < 8; j++) expect(b[j]).toBeCloseTo(a[j] * ratio, 2)
          }
        }
        const [pSq, pGptq] = [
          await ppl(sq, SLOW ? undefined : EVAL_WINDOWS),
          await ppl(gptq, SLOW ? undefined : EVAL_WINDOWS),
        ]
        // GPTQ w3 per channel, counted by its own method (fp16 scale + 3-bit zero per row).
        expect(meanBits(sq)).toBeLessThanOrEqual(meanBits(gptq))
        expect(pSq).toBeLessThan(pGptq)
        if (SLOW) expect(pSq).toBeLessThan(GPTQ_W3)
        console.log(
          `SqueezeLLM w3 shared tables: ppl ${pSq.toFixed(4)} at ${meanBits(sq).toFixed(3)} bpw; GPTQ w3 ${pGptq.toFixed(4)} at ${meanBits(gptq).toFixed(3)} bpw (g128 ${meanBits(sq, gptqG128Bits).toFixed(3)} bpw)`,
        )
      },
      scaled(SLOW ? 900_000 : 180_000),
    )

    // The fallback's quality (its mechanics run always-on in export/squeezellm-export.test.ts).
    it.skipIf(!SLOW)(
      'SqueezeLLM with the Hessian diagonal instead of the Fisher also beats GPTQ w3 (WHITTLE_SLOW=1)',
      async () => {
        const sq = await run('squeezellm', { bits: 3, sensitivity: 'hessian' })
        const gptq = await baseline('gptq', { bits: 3 })
        const [pSq, pGptq] = [
          await ppl(sq, SLOW ? undefined : EVAL_WINDOWS),
          await ppl(gptq, SLOW ? undefined : EVAL_WINDOWS),
        ]
        expect(pSq).toBeLessThan(pGptq)
        if (SLOW) expect(pSq).toBeLessThan(GPTQ_W3)
        console.log(`SqueezeLLM w3 (Hessian diagonal): ppl ${pSq.toFixed(4)}; GPTQ w3 ${pGptq.toFixed(4)}`)
      },
      scaled(SLOW ? 900_000 : 180_000),
    )

    it(
      'GOBO w3 beats RTN w3 per channel; outliers stay exact, the body takes 8 values',
      async () => {
        const gb = await run('gobo', { bits: 3 })
        const rtn = await run('rtn', { bits: 3 })
        for (const t of gb.tensors) {
          if (t.grid?.kind !== 'centroids') throw new Error(`${t.name}: no centroid grid`)
          expect(t.grid.rows).toHaveLength(1)
          expect(t.grid.rows[0].row).toBe(-1)
          const table = new Set(t.grid.rows[0].centroids)
          expect(table.size).toBe(8)
          const n = t.shape[0] * t.shape[1]
          const w = gb.view.replaced().get(t.name)!
          const before = await readTensorF32(model.entry(t.name))
          let outliers = 0
          for (let i = 0; i < n; i++) {
            if (table.has(w[i])) continue
            expect(w[i]).toBe(before[i]) // not on the table: an outlier, kept as it was
            outliers++
          }
          expect(outliers / n).toBeCloseTo(t.grid.outlierFraction, 12)
          expect(t.bitsPerWeight).toBeCloseTo(((n - outliers) * 3 + outliers * 64 + 8 * 32) / n, 12)
        }
        const [pGobo, pRtn] = [
          await ppl(gb, SLOW ? undefined : EVAL_WINDOWS),
          await ppl(rtn, SLOW ? undefined : EVAL_WINDOWS),
        ]
        expect(pGobo).toBeLessThan(pRtn)
        if (SLOW) expect(pGobo).toBeLessThan(RTN_W3)
        console.log(`GOBO w3: ppl ${pGobo.toFixed(4)} at ${meanBits(gb).toFixed(3)} bpw; RTN w3 ${pRtn.toFixed(4)}`)
      },
      scaled(SLOW ? 600_000 : 120_000),
    )
  },
)
