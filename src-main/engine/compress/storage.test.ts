// Size accounting: the prediction before a run agrees with the report after it, and both add up the
// checkpoint's own bytes for what is left uncompressed.

import { describe, expect, it } from 'vitest'
import { loadModel } from '../model/loaded-model'
import { WorkerPool } from '../pool/worker-pool'
import { hasShared, shared, SKIP_SHARED } from '../testing/shared-data'
import { sizeReport } from './compress-model'
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
      const untouched = model.files.tensors.filter((t) => !r.tensors.some((o) => o.name === t.name)).reduce((a, t) => a + t.byteLength, 0)
      const packed = r.tensors.reduce((a, t) => a + Math.ceil((t.bitsPerWeight * t.shape[0] * t.shape[1]) / 8), 0)
      expect(measured.bytes_after).toBe(untouched + packed)
    } finally {
      await pool.close()
    }
  })
})
