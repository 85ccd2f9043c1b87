// Reference twin of kernels/assembly/histogram.ts.
// The bin index is computed in f32 exactly as the kernel does (Math.fround after every operation):
//   scale = f32(bins) / (hi - lo)        once, in f32
//   bin   = trunc((x - lo) * scale)      in f32, NaN -> 0, clamped to [0, bins - 1]
// so the counts match the kernel exactly. Values below lo / above hi are counted in counts[bins] /
// counts[bins + 1]; NaN and ±Infinity are skipped.

const f32 = Math.fround

/**
 * Adds the values of `src` into `counts` (length >= bins + 2), as the kernel does: counts accumulate
 * across calls. Does nothing when bins < 1.
 */
export function histogram(src: Float32Array, lo: number, hi: number, bins: number, counts: Uint32Array): void {
  if (!(bins >= 1)) return
  bins = Math.trunc(bins)
  if (counts.length < bins + 2)
    throw new RangeError(`histogram: counts holds ${counts.length} entries, ${bins + 2} needed`)
  const lo32 = f32(lo)
  const hi32 = f32(hi)
  const scale = f32(f32(bins) / f32(hi32 - lo32))
  const last = bins - 1
  for (let i = 0; i < src.length; i++) {
    const x = src[i]
    if (x - x !== 0) continue // NaN or ±Infinity
    if (x < lo32) {
      counts[bins]++
      continue
    }
    if (x > hi32) {
      counts[bins + 1]++
      continue
    }
    counts[binIndex(f32(f32(x - lo32) * scale), last)]++
  }
}

/** trunc with the saturating semantics of i32x4.trunc_sat_f32x4_s (NaN -> 0), clamped to [0, last]. */
function binIndex(t: number, last: number): number {
  if (!(t > 0)) return 0 // NaN (0 * Infinity when hi == lo) and t <= 0
  if (t >= last) return last
  return Math.trunc(t)
}
