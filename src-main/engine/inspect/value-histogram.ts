// Equal-width histogram of a small set of values held in memory (scales: one per group or block), over
// their own finite range, counted as the streamed tensor histogram counts: bin = floor((v − lo) / width),
// the maximum in the last bin.

import type { Histogram } from '../../contract/api'

export function valueHistogram(values: ArrayLike<number>, bins: number): Histogram {
  let lo = Infinity,
    hi = -Infinity
  for (let i = 0; i < values.length; i++) {
    const v = values[i]
    if (!Number.isFinite(v)) continue
    if (v < lo) lo = v
    if (v > hi) hi = v
  }
  if (lo > hi) {
    lo = 0
    hi = 0
  }
  if (!(hi > lo)) {
    lo -= 0.5
    hi += 0.5
  }
  const counts = new Array<number>(bins).fill(0)
  const scale = bins / (hi - lo)
  for (let i = 0; i < values.length; i++) {
    const v = values[i]
    if (!Number.isFinite(v)) continue
    counts[Math.min(bins - 1, Math.floor((v - lo) * scale))]++
  }
  return { lo, hi, counts, below: 0, above: 0 }
}
