// Quantization throughput on the synthetic TinyLlama-1.1B-shape model (BF16): RTN w4 g128 and the
// GGUF types, streamed one Linear at a time (read → decode → quantize → drop), so peak RSS stays far
// below the model's 2.2 GB; and GPTQ wall time on the real stories260K.

import { calibrationWindows } from '../../src-main/engine/calibration/windows'
import { runRecipe } from '../../src-main/engine/compress/pipeline'
import { rtnQuantize } from '../../src-main/engine/compress/methods/rtn'
import { quantizeTensorGguf } from '../../src-main/engine/compress/gguf-types/quantize-tensor'
import { validateRecipe } from '../../src-main/engine/compress/recipe/recipe'
import { isBlockLinear } from '../../src-main/engine/compress/recipe/targets'
import { readTensorF32 } from '../../src-main/engine/formats/read'
import { loadModel } from '../../src-main/engine/model/loaded-model'
import { WorkerPool } from '../../src-main/engine/pool/worker-pool'
import { hasShared, referenceCalibrationStarts, referenceIds, shared } from '../../src-main/engine/testing/shared-data'
import { syntheticModel } from '../models'
import { emit, gbps, peakRss } from '../rows'

const dir = await syntheticModel('tinyllama-1.1b', 'BF16')
const model = await loadModel(dir)
const linears = model.tensors.filter(isBlockLinear)
const bytes = linears.reduce((a, t) => a + model.entry(t.name).byteLength, 0)
const pool = await WorkerPool.create({ threads: 0 })

async function stream(label: string, quantize: (w: Float32Array, rows: number, cols: number) => void): Promise<void> {
  const t0 = performance.now()
  for (const t of linears) {
    const w = await readTensorF32(model.entry(t.name))
    quantize(w, t.shape[0], t.shape[1])
  }
  const s = (performance.now() - t0) / 1000
  emit({
    case: 'quantize all Linears, TinyLlama-1.1B shape, BF16 in',
    variant: label,
    measure: 'throughput (BF16 bytes in)',
    value: gbps(bytes, s),
    ratio: `${s.toFixed(1)} s for ${(bytes / 1e9).toFixed(2)} GB`,
    peakRss: peakRss(),
  })
}

await stream('RTN w4 g128 (TS, 1 thread)', (w, r, c) => rtnQuantize(w, r, c, { bits: 4, groupSize: 128, sym: false }))
for (const type of ['Q8_0', 'Q4_0', 'Q4_K'] as const) {
  await stream(`GGUF ${type} (WASM, 1 thread)`, (w, r, c) => void quantizeTensorGguf(pool, w, r, c, type))
}
await pool.close()

if (hasShared) {
  const p2 = await WorkerPool.create({ threads: 2 })
  const stories = await loadModel(shared('models/stories260K'))
  const windows = calibrationWindows(referenceIds('tinystories_calib'), {
    samples: 128,
    seqlen: 256,
    seed: 0,
    starts: referenceCalibrationStarts(),
  })
  const r = await runRecipe(p2, stories, validateRecipe({ steps: [{ method: 'gptq', params: { bits: 4 } }] }), {
    windows,
  })
  emit({
    case: 'GPTQ w4, stories260K, 128 × 256 calibration',
    variant: 'whole model (5 layers)',
    measure: 'wall time',
    value: `${r.seconds.toFixed(1)} s`,
    peakRss: peakRss(),
  })
  await p2.close()
}
