// A LoRA trained briefly on stories260K (B no longer zero), the model with it merged, and the way
// adapter loaders apply an adapter (W + scale·B·A, computed here on its own in f64): what the adapter
// export tests re-open their files against.

import { calibrationWindows } from '../../calibration/windows'
import { parseLoraParams, runLora } from '../../compress/methods/lora'
import { loadModel, type LoadedModel } from '../../model/loaded-model'
import { withReplacements, type ModelView } from '../../model/model-view'
import type { WorkerPool } from '../../pool/worker-pool'
import { referenceCalibrationStarts, referenceIds, shared } from '../../testing/shared-data'
import type { LoraAdapterSet } from '../../train/lora'

export interface TrainedLora {
  model: LoadedModel
  merged: ModelView
  adapters: LoraAdapterSet
}

/** 4 steps of LoRA r 4 α 8 on all 35 Linears of stories260K (lr 1e-2, so the adapters move the model). */
export async function trainedLora(pool: WorkerPool): Promise<TrainedLora> {
  const model = await loadModel(shared('models/stories260K'))
  const windows = calibrationWindows(referenceIds('tinystories_calib'), {
    samples: 16,
    seqlen: 128,
    seed: 0,
    starts: referenceCalibrationStarts().slice(0, 16),
  })
  const merged = withReplacements(model)
  const run = await runLora({
    view: merged,
    pool,
    windows,
    params: parseLoraParams({ r: 4, alpha: 8, steps: 4, batch_size: 4, seqlen: 128, lr: 1e-2 }, 'lora'),
  })
  return { model, merged, adapters: run.adapters }
}

/** W + scale·B·A with W [rows, cols], A [r, cols], B [rows, r]. */
export function applyAdapter(
  W: Float32Array,
  A: Float32Array,
  B: Float32Array,
  rows: number,
  cols: number,
  r: number,
  scale: number,
): Float32Array {
  const out = new Float32Array(W.length)
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) {
      let s = 0
      for (let k = 0; k < r; k++) s += B[i * r + k] * A[k * cols + j]
      out[i * cols + j] = W[i * cols + j] + scale * s
    }
  }
  return out
}
