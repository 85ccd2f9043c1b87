// The diagonal of the empirical Fisher information of the block Linears' weights: for each weight, the
// mean over calibration windows of the squared gradient of that window's next-token loss (SqueezeLLM's
// sensitivity, Kim et al. 2023, §3.2). One window per backward pass, so each gradient is one sample's,
// as the authors' gradient framework computes it; the loss is cross-entropy alone (no teacher).
// Llama family only, as the training engine (requireTrainable says why otherwise).

import { WhittleError } from '../errors'
import { throwIfCancelled } from '../jobs/cancel'
import type { LoadedModel } from '../model/loaded-model'
import type { WorkerPool } from '../pool/worker-pool'
import { LlamaTrainer } from './llama-trainer'
import { requireTrainable } from './llama-weights'

export interface FisherOptions {
  signal?: AbortSignal
  onProgress?: (fraction: number, message: string) => void
}

/** Per block Linear (by tensor name), the mean squared gradient of each weight, [out, in] row-major. */
export async function fisherDiagonal(
  pool: WorkerPool,
  model: LoadedModel,
  windows: Int32Array[],
  options: FisherOptions = {},
): Promise<Map<string, Float32Array>> {
  requireTrainable(model)
  if (windows.length === 0)
    throw new WhittleError('validation', model.files.path, 'the Fisher needs calibration windows')
  const T = windows[0].length
  const trainer = await LlamaTrainer.create(pool, model, null, T, { temperature: 1, alpha: 0 })
  try {
    const sums = new Map<string, Float64Array>()
    for (const p of trainer.params) sums.set(p.name, new Float64Array(p.grad.length))
    for (let i = 0; i < windows.length; i++) {
      throwIfCancelled(options.signal)
      trainer.zeroGrads()
      // The gradient of the window's mean loss over its T − 1 predictions.
      await trainer.accumulate([windows[i]], 1 / (T - 1), options.signal)
      for (const p of trainer.params) {
        const g = p.grad.view(),
          f = sums.get(p.name)!
        for (let j = 0; j < g.length; j++) f[j] += g[j] * g[j]
      }
      options.onProgress?.((i + 1) / windows.length, `Fisher: window ${i + 1}/${windows.length}`)
    }
    const out = new Map<string, Float32Array>()
    for (const [name, f] of sums)
      out.set(
        name,
        Float32Array.from(f, (v) => v / windows.length),
      )
    return out
  } finally {
    trainer.free()
  }
}
