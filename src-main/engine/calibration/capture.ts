// Calibration capture: run calibration windows through the model one decoder layer at a time and
// record, per Linear input, what the compression methods need: per-channel absmax and mean |x| (LLM.int8,
// SmoothQuant, AWQ, the activation-outlier views), per-channel Σx² (Wanda) and the Hessian Σ XᵀX (GPTQ,
// SparseGPT). Linears that read the same tensor (q/k/v; gate/up) share one record.
// Hidden states of all windows live in JS memory; kernel memory only ever holds one pass of one layer.

import type { LoadedModel } from '../model/loaded-model'
import type { WorkerPool } from '../pool/worker-pool'
import { WhittleError } from '../errors'
import { throwIfCancelled } from '../jobs/cancel'
import type { InputGroup } from '../../contract/api'
import { createForward } from '../forward'
import { INPUT_GROUP, RECORDING_ROLES } from '../forward/causal-lm'
import { layerIntermediateSize } from '../arch/types'
import { colInputStats } from '../../../kernels/reference/channels'
import { hessianAccumulate } from '../../../kernels/reference/hessian'

/** Linears grouped by the input they read. */
export type { InputGroup }
export { INPUT_GROUP }

export interface InputStats {
  channels: number
  tokens: number
  windows: number
  absmax: Float32Array
  sumAbs: Float64Array
  sumSq: Float64Array
  /**
   * Σ over tokens of x xᵀ, row-major K×K, f64; present when requested. A method that has planned all it
   * needs from it sets it to null (gptq-plan.ts: planGroupThenDropHessian), so it can be freed early.
   */
  hessian: Float64Array | null
}

export type LayerStats = Record<InputGroup, InputStats>

export interface CaptureOptions {
  hessian?: boolean
  signal?: AbortSignal
  onProgress?: (fraction: number, message: string) => void
  /** Called once per layer when its statistics are complete; return false to not keep them in the result. */
  onLayer?: (layer: number, stats: LayerStats) => boolean | void
}

export function emptyInputStats(K: number, hessian: boolean): InputStats {
  return {
    channels: K,
    tokens: 0,
    windows: 0,
    absmax: new Float32Array(K),
    sumAbs: new Float64Array(K),
    sumSq: new Float64Array(K),
    hessian: hessian ? new Float64Array(K * K) : null,
  }
}

/** Adds M rows of x [M, K] into the statistics (upper triangle of the Hessian, mirrored at the end). */
export function accumulateInput(s: InputStats, x: Float32Array, M: number, K: number): void {
  const { hessian } = s
  // The per-column statistics: the kernels' col_input_stats twin (the kernel path gives the same bits).
  colInputStats(x, M, K, s.absmax, s.sumAbs, s.sumSq)
  // The Hessian: the kernels' hessian_accumulate twin (f32 sums per chunk of tokens, f64 across chunks).
  if (hessian) hessianAccumulate(x, hessian, M, K)
  s.tokens += M
}

export function finishHessian(s: InputStats): void {
  const H = s.hessian
  if (!H) return
  const K = s.channels
  for (let i = 0; i < K; i++) for (let j = i + 1; j < K; j++) H[j * K + i] = H[i * K + j]
}

export async function captureCalibration(
  pool: WorkerPool,
  model: LoadedModel,
  windows: Int32Array[],
  options: CaptureOptions = {},
): Promise<(LayerStats | null)[]> {
  if (windows.length === 0) throw new WhittleError('validation', null, 'calibration needs at least one window')
  const T = windows[0].length
  const forward = await createForward(pool, model)
  const a = model.arch
  const result: (LayerStats | null)[] = []
  try {
    const hidden = await forward.embed(windows)
    for (let layer = 0; layer < a.layers; layer++) {
      throwIfCancelled(options.signal)
      const stats: LayerStats = {
        qkv: emptyInputStats(a.hiddenSize, !!options.hessian),
        o: emptyInputStats(a.heads * a.headDim, !!options.hessian),
        gate_up: emptyInputStats(a.hiddenSize, !!options.hessian),
        down: emptyInputStats(layerIntermediateSize(a, layer), !!options.hessian),
      }
      await forward.block(layer, hidden, T, {
        linearInput(_layer, role, x, M, K) {
          // Linears sharing an input see the same tensor: record it once, from the group's first reader.
          if (RECORDING_ROLES.has(role)) accumulateInput(stats[INPUT_GROUP[role]], x, M, K)
        },
      })
      for (const s of Object.values(stats)) {
        s.windows = windows.length
        finishHessian(s)
      }
      const keep = options.onLayer?.(layer, stats)
      result.push(keep === false ? null : stats)
      options.onProgress?.((layer + 1) / a.layers, `calibration: layer ${layer + 1}/${a.layers}`)
    }
    return result
  } finally {
    forward.close()
  }
}
