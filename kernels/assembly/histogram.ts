// histogram: ACCUMULATES counts of an f32 chunk over [lo, hi] into u32 counts[bins + 2].
// Twin: kernels/reference/histogram.ts (bit-exact: same f32 index arithmetic, same clamping).
// counts[bins] gets finite values < lo, counts[bins + 1] finite values > hi; NaN and ±Inf are skipped.

// @ts-ignore: decorator
@inline function bump(counts: usize, index: i32): void {
  if (index >= 0) {
    const at = counts + (<usize>index << 2)
    store<u32>(at, load<u32>(at) + 1)
  }
}

export function histogram(ptr: usize, n: i32, lo: f32, hi: f32, bins: i32, counts: usize): void {
  if (bins < 1) return
  const scale: f32 = <f32>bins / (hi - lo)
  const last = bins - 1
  const loV = f32x4.splat(lo)
  const hiV = f32x4.splat(hi)
  const scaleV = f32x4.splat(scale)
  const inf = f32x4.splat(<f32>Infinity)
  const firstBin = i32x4.splat(0)
  const lastBin = i32x4.splat(last)
  const belowBin = i32x4.splat(bins)
  const aboveBin = i32x4.splat(bins + 1)
  const skip = i32x4.splat(-1)
  const n4 = n & ~3
  let i = 0
  for (; i < n4; i += 4) {
    const v = v128.load(ptr + (<usize>i << 2))
    // trunc_sat: NaN (0 * Inf when hi == lo) -> 0, overflow saturates; then clamp so x == hi is in range.
    let bin = i32x4.trunc_sat_f32x4_s(f32x4.mul(f32x4.sub(v, loV), scaleV))
    bin = i32x4.min_s(i32x4.max_s(bin, firstBin), lastBin)
    // "below" wins over "above" (both hold only when hi < lo), as in the twin.
    bin = v128.bitselect(aboveBin, bin, f32x4.gt(v, hiV))
    bin = v128.bitselect(belowBin, bin, f32x4.lt(v, loV))
    bin = v128.bitselect(bin, skip, f32x4.lt(f32x4.abs(v), inf))
    bump(counts, i32x4.extract_lane(bin, 0))
    bump(counts, i32x4.extract_lane(bin, 1))
    bump(counts, i32x4.extract_lane(bin, 2))
    bump(counts, i32x4.extract_lane(bin, 3))
  }
  for (; i < n; i++) {
    const x = load<f32>(ptr + (<usize>i << 2))
    if (!(abs<f32>(x) < <f32>Infinity)) continue
    if (x < lo) { bump(counts, bins); continue }
    if (x > hi) { bump(counts, bins + 1); continue }
    const t: f32 = (x - lo) * scale
    let bin = 0
    if (t > 0) bin = <f64>t >= <f64>last ? last : <i32>t
    bump(counts, bin)
  }
}
