// Block importance two ways: the angular distance between a block's input and output hidden states
// (arccos of their cosine similarity over π, averaged over tokens, after "The Unreasonable
// Ineffectiveness of the Deeper Layers"), and the mean calibration NLL increase when the block is skipped.

import type { LayerImportance } from '../../contract/api'
import { throwIfCancelled } from '../jobs/cancel'
import type { CausalLM } from '../forward/causal-lm'
import { baselineRun, resumeFrom } from './baseline-run'
import type { ProbeOptions } from './head-importance'

export function meanAngularDistance(a: Float32Array, b: Float32Array, H: number): number {
  const tokens = a.length / H
  let sum = 0
  for (let t = 0; t < tokens; t++) {
    let dot = 0,
      na = 0,
      nb = 0
    for (let i = t * H; i < (t + 1) * H; i++) {
      dot += a[i] * b[i]
      na += a[i] * a[i]
      nb += b[i] * b[i]
    }
    const cos = na > 0 && nb > 0 ? Math.max(-1, Math.min(1, dot / Math.sqrt(na * nb))) : 1
    sum += Math.acos(cos) / Math.PI
  }
  return tokens ? sum / tokens : 0
}

export async function layerImportance(
  forward: CausalLM,
  windows: Int32Array[],
  options: ProbeOptions = {},
): Promise<LayerImportance> {
  const L = forward.arch.layers
  const H = forward.arch.hiddenSize
  const run = await baselineRun(forward, windows, undefined, options.signal)
  const angularDistance = Array.from({ length: L }, (_, l) => meanAngularDistance(run.inputs[l], run.inputs[l + 1], H))
  const skipDelta: number[] = []
  for (let l = 0; l < L; l++) {
    throwIfCancelled(options.signal)
    skipDelta.push((await resumeFrom(forward, run, l, l)) - run.meanNll)
    options.onProgress?.((l + 1) / L, `skipping block ${l}`)
  }
  return { samples: windows.length, seqlen: run.T, baselineNll: run.meanNll, angularDistance, skipDelta }
}
