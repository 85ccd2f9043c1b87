// Size accounting: the prediction before a run agrees with the report after it, and both add up the
// checkpoint's own bytes for what is left uncompressed.

import { describe, expect, it } from 'vitest'
import { loadModel } from '../model/loaded-model'
import { WorkerPool } from '../pool/worker-pool'
import { hasShared, shared, SKIP_SHARED } from '../testing/shared-data'
import { parameterReport, sizeReport } from './compress-model'
import { runRecipe } from './pipeline'
import { predictCompression } from './predict'
import { validateRecipe } from './recipe/recipe'

describe.skipIf(!hasShared)(`storage accounting (${hasShared ? 'reference data present' : SKIP_SHARED})`, () => {
  it('RTN w4 g32: prediction equals the measured report; untouched tensors keep their bytes', async () => {
    const model = await loadModel(shared('models/stories260K'))
    const recipe = validateRecipe({ steps: [{ method: 'rtn', params: { bits: 4, group_size: 32 } }] })
    const predicted = predictCompression(model, recipe)
    const pool = await WorkerPool.create({ threads: 0 })
    try {
      const r = await runRecipe(pool, model, recipe)
      const measured = sizeReport(model, r.tensors)
      expect(measured.bits_per_weight).toBeCloseTo(predicted.bitsPerWeight, 12)
      expect(measured.bytes_after).toBe(predicted.bytesAfter)
      const all = model.files.tensors.reduce((a, t) => a + t.byteLength, 0)
      expect(measured.bytes_before).toBe(all)
      const untouched = model.files.tensors
        .filter((t) => !r.tensors.some((o) => o.name === t.name))
        .reduce((a, t) => a + t.byteLength, 0)
      const packed = r.tensors.reduce((a, t) => a + Math.ceil((t.bitsPerWeight * t.shape[0] * t.shape[1]) / 8), 0)
      expect(measured.bytes_after).toBe(untouched + packed)
      // Written densely nothing shrinks: the dense size is every tensor's bytes, as before.
      expect(measured.bytes_dense_after).toBe(all)
      // RTN's codes that land on 0 are not sparsity: nothing pruned, nothing reported.
      expect(r.tensors.some((t) => t.sparsity > 0)).toBe(true)
      expect(parameterReport(model, r.view, r.tensors).sparsity).toBe(0)
    } finally {
      await pool.close()
    }
  })
})
