// Pruning targets on stories260K against the reference perplexities (±1%), computed with the authors'
// code (locuslab/wanda for magnitude and Wanda, IST-DASLab/sparsegpt): same eval protocol, same 128
// calibration windows. Wanda's weights must equal the reference's exactly; at equal sparsity SparseGPT
// beats Wanda and Wanda beats magnitude.

import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { perplexity } from '../eval/perplexity'
import { openModelFiles } from '../formats/open'
import { readTensorF32 } from '../formats/read'
import { loadModel, type LoadedModel } from '../model/loaded-model'
import { WorkerPool } from '../pool/worker-pool'
import { hasShared, referenceIds, referenceRun, shared } from '../testing/shared-data'
import { runRecipe } from './pipeline'
import type { PipelineResult } from './pipeline-types'
import { validateRecipe } from './recipe/recipe'
import { referenceCalibrationWindows } from '../calibration/testing/reference-windows'

describe.skipIf(!hasShared)('pruning targets on stories260K (reference data present)', () => {
  let pool: WorkerPool
  let model: LoadedModel
  let windows: Int32Array[]
  const measured = new Map<string, number>()
  const evalIds = (): Int32Array => referenceIds('tinystories_eval')

  beforeAll(async () => {
    pool = await WorkerPool.create({ threads: 2 })
    model = await loadModel(shared('models/stories260K'))
    windows = referenceCalibrationWindows()
  })
  afterAll(() => pool?.close())

  async function run(method: string, params: Record<string, unknown>): Promise<PipelineResult> {
    return runRecipe(pool, model, validateRecipe({ steps: [{ method, params }] }), { windows })
  }

  const cases = [
    { run: 'magnitude_50', method: 'magnitude', params: { sparsity: 0.5 } },
    { run: 'wanda_50', method: 'wanda', params: { sparsity: 0.5 } },
    { run: 'sparsegpt_50', method: 'sparsegpt', params: { sparsity: 0.5 } },
  ]
  for (const c of cases) {
    it(`${c.run} lands within 1% of the reference perplexity, at the reference's sparsity`, async () => {
      const r = await run(c.method, c.params)
      expect(r.tensors).toHaveLength(35)
      const ref = referenceRun(c.run) as ReturnType<typeof referenceRun> & { sparsity_block_linears: number }
      let zeros = 0,
        numel = 0
      for (const t of r.tensors) {
        zeros += t.sparsity * t.shape[0] * t.shape[1]
        numel += t.shape[0] * t.shape[1]
        expect(t.mask?.density.length).toBeGreaterThan(0)
      }
      expect(Math.abs(zeros / numel - ref.sparsity_block_linears)).toBeLessThan(2e-4)
      const ppl = (await perplexity(pool, r.view, evalIds(), { seqlen: 256 })).ppl
      measured.set(c.method, ppl)
      const want = ref.ppl.tinystories_eval['256'].ppl
      expect(Math.abs(ppl / want - 1), `${ppl} vs ${want}`).toBeLessThan(0.01)
    })
  }

  it('at 50%, SparseGPT beats Wanda and Wanda beats magnitude', () => {
    expect(measured.get('sparsegpt')!).toBeLessThan(measured.get('wanda')!)
    expect(measured.get('wanda')!).toBeLessThan(measured.get('magnitude')!)
  })

  it('Wanda 50% reproduces the reference weights exactly', async () => {
    const r = await run('wanda', { sparsity: 0.5 })
    const ref = await openModelFiles(shared('reference/compressed/wanda_50.safetensors'))
    let compared = 0,
      differing = 0
    for (const t of ref.tensors) {
      const mine = r.view.replaced().get(t.name)
      if (!mine) continue
      const theirs = await readTensorF32(t)
      for (let i = 0; i < mine.length; i++) if (mine[i] !== theirs[i]) differing++
      compared++
    }
    expect(compared).toBe(35)
    expect(differing).toBe(0)
  })

  it('2:4 patterns hold in every group, for magnitude, Wanda and SparseGPT', async () => {
    for (const method of ['magnitude', 'wanda', 'sparsegpt']) {
      const r = await run(method, { pattern: '2:4' })
      for (const t of r.tensors) {
        expect(t.nm, `${method} ${t.name}`).toMatchObject({ n: 2, m: 4, valid: true, violations: 0 })
        expect(t.sparsity).toBeGreaterThanOrEqual(0.5)
        expect(t.format).toBe('2:4')
      }
    }
  })
})
