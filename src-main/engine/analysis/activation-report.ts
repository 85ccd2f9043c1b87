// Activation outliers from a calibration capture: per Linear input, the channels whose absmax exceeds
// a threshold (6.0 by default, LLM.int8's), how persistently the same hidden channels are outliers
// across layers, and a SmoothQuant preview: for α in [0, 1], s_j = max|X_j|^α / max|W_j|^(1−α) and the
// resulting activation and weight ranges, so one sees where the quantization difficulty moves.

import type { ActivationReport, InputGroup, SmoothingPreview } from '../../contract/api'
import { tensorName } from '../arch'
import { readTensorF32 } from '../formats/read'
import type { LoadedModel } from '../model/loaded-model'
import type { LayerStats } from '../calibration/capture'

export const DEFAULT_ACTIVATION_THRESHOLD = 6
export const SMOOTHING_ALPHAS = [0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1]
/** SmoothQuant's clamps: weight absmax and the scale itself never drop below this. */
const CLAMP = 1e-5

/** max over output rows of |W[:, j]| for every input column j, across all weights sharing the input. */
export function columnAbsmax(weights: Float32Array[], cols: number): Float32Array {
  const out = new Float32Array(cols)
  for (const w of weights) {
    for (let i = 0; i < w.length; i++) {
      const c = i % cols
      const a = Math.abs(w[i])
      if (a > out[c]) out[c] = a
    }
  }
  return out
}

export function smoothingRanges(
  actAbsmax: ArrayLike<number>,
  weightAbsmax: ArrayLike<number>,
  alphas: number[],
): { activationRange: number[]; weightRange: number[] } {
  const activationRange: number[] = []
  const weightRange: number[] = []
  for (const alpha of alphas) {
    let act = 0,
      wt = 0
    for (let j = 0; j < actAbsmax.length; j++) {
      const x = actAbsmax[j]
      const w = Math.max(weightAbsmax[j], CLAMP)
      const s = Math.max(Math.pow(x, alpha) / Math.pow(w, 1 - alpha), CLAMP)
      act = Math.max(act, x / s)
      wt = Math.max(wt, w * s)
    }
    activationRange.push(act)
    weightRange.push(wt)
  }
  return { activationRange, weightRange }
}

export async function activationReport(
  model: LoadedModel,
  layers: LayerStats[],
  seqlen: number,
  threshold = DEFAULT_ACTIVATION_THRESHOLD,
): Promise<ActivationReport> {
  const a = model.arch
  const inputs: ActivationReport['inputs'] = []
  const counts = new Array<number>(a.hiddenSize).fill(0)
  let hiddenInputs = 0
  const smoothing: SmoothingPreview[] = []
  for (const [layer, stats] of layers.entries()) {
    for (const group of ['qkv', 'o', 'gate_up', 'down'] as InputGroup[]) {
      const s = stats[group]
      const outliers: number[] = []
      for (let j = 0; j < s.channels; j++) if (s.absmax[j] > threshold) outliers.push(j)
      inputs.push({
        layer,
        group,
        absmax: Array.from(s.absmax),
        meanAbs: Array.from(s.sumAbs, (v) => v / Math.max(1, s.tokens)),
        meanSq: Array.from(s.sumSq, (v) => v / Math.max(1, s.tokens)),
        outliers,
      })
      if (group === 'qkv' || group === 'gate_up') {
        hiddenInputs++
        for (const j of outliers) counts[j]++
        const roles = group === 'qkv' ? (['q', 'k', 'v'] as const) : (['gate', 'up'] as const)
        const weights = await Promise.all(roles.map((r) => readTensorF32(model.entry(tensorName(a, layer, r)!))))
        smoothing.push({
          layer,
          group,
          ...smoothingRanges(s.absmax, columnAbsmax(weights, s.channels), SMOOTHING_ALPHAS),
        })
      }
    }
  }
  return {
    threshold,
    samples: layers[0]?.qkv.windows ?? 0,
    seqlen,
    tokens: layers[0]?.qkv.tokens ?? 0,
    inputs,
    persistence: { channels: a.hiddenSize, inputs: hiddenInputs, counts },
    alphas: SMOOTHING_ALPHAS,
    smoothing,
  }
}
