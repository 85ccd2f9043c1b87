// An activation report for the chart tests: two layers, hidden size 4, FFN 3, every input group, the
// outliers computed by the report's own rule, and SmoothQuant previews at five alphas.

import type { ActivationInput, ActivationReport, InputGroup, SmoothingPreview } from '@contract/api'

export function input(layer: number, group: InputGroup, absmax: number[], threshold = 6): ActivationInput {
  return {
    layer,
    group,
    absmax,
    meanAbs: absmax.map((v) => v / 4),
    meanSq: absmax.map((v) => (v * v) / 8),
    // Outliers by the report's own rule, computed here rather than copied.
    outliers: absmax.flatMap((v, i) => (v > threshold ? [i] : [])),
  }
}

export const ALPHAS = [0, 0.25, 0.5, 0.75, 1]

export function preview(
  layer: number,
  group: SmoothingPreview['group'],
  act: number[],
  weight: number[],
): SmoothingPreview {
  return { layer, group, activationRange: act, weightRange: weight }
}

/** Two layers, hidden size 4, FFN 3; the report lists inputs in an order the views must not rely on. */
export function report(): ActivationReport {
  const inputs = [
    input(1, 'gate_up', [1, 9, 2, 0.5]),
    input(0, 'qkv', [7, 1, 0.5, 8]),
    input(0, 'o', [1, 1, 1, 1]),
    input(0, 'gate_up', [1, 6.5, 1, 1]),
    input(0, 'down', [1, 2, 3]),
    input(1, 'qkv', [2, 10, 0.25, 7]),
    input(1, 'o', [1, 1, 1, 1]),
    input(1, 'down', [20, 30, 40]),
  ]
  const hidden = inputs.filter((i) => i.group === 'qkv' || i.group === 'gate_up')
  const counts = [0, 0, 0, 0]
  for (const i of hidden) for (const c of i.outliers) counts[c]++
  return {
    threshold: 6,
    samples: 2,
    seqlen: 8,
    tokens: 16,
    inputs,
    persistence: { channels: 4, inputs: hidden.length, counts },
    alphas: ALPHAS,
    smoothing: [
      preview(1, 'qkv', [10, 6, 4, 3, 2], [0.5, 1, 2, 3, 5]),
      preview(0, 'qkv', [8, 5, 3, 2, 1], [1, 2, 3, 5, 8]),
      preview(0, 'gate_up', [6.5, 4, 3, 2, 1], [1, 1.5, 2, 3, 4]),
      preview(1, 'gate_up', [9, 5, 3, 2, 1], [0, 1, 2, 3, 4]),
    ],
  }
}
