// Outlier channels: a channel whose absmax exceeds k times the median channel absmax.
// k = 6 by default, the same order as LLM.int8's activation threshold, so weights and activations read alike.

import type { ChannelProfile } from '../../contract/api'

export const DEFAULT_OUTLIER_K = 6

export function median(values: ArrayLike<number>): number {
  const n = values.length
  if (n === 0) return 0
  const sorted = Float64Array.from(values).sort()
  return n % 2 === 1 ? sorted[(n - 1) / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2
}

export function outlierIndices(absmax: ArrayLike<number>, k: number, med = median(absmax)): number[] {
  const out: number[] = []
  const threshold = k * med
  for (let i = 0; i < absmax.length; i++) if (absmax[i] > threshold) out.push(i)
  return out
}

export function channelProfile(
  axis: 'out' | 'in',
  absmax: Float32Array,
  sumsq: Float64Array,
  k: number,
): ChannelProfile {
  const med = median(absmax)
  return {
    axis,
    absmax: Array.from(absmax),
    l2: Array.from(sumsq, Math.sqrt),
    median: med,
    outliers: outlierIndices(absmax, k, med),
  }
}

/**
 * One number per tensor for the overview heatmap: log2 of how far the worst channel sits above the
 * median channel. A tensor scores log2(k) exactly where its worst channel crosses the outlier threshold.
 * 1-D tensors have no channels; they use absmax/std, the same "how far is the tail" question.
 */
export function outlierScore(colAbsmax: ArrayLike<number> | null, absmax: number, std: number): number {
  if (colAbsmax && colAbsmax.length > 0) {
    const med = median(colAbsmax)
    let worst = 0
    for (let i = 0; i < colAbsmax.length; i++) worst = Math.max(worst, colAbsmax[i])
    return med > 0 ? Math.log2(worst / med) : 0
  }
  return std > 0 ? Math.log2(absmax / std) : 0
}
