// RMSNorm and LayerNorm over rows of H. Twin: kernels/reference/norm.ts (bit-exact).
//
// Statistics are accumulated in f64 (more accurate than PyTorch's f32 reduction, and independent
// of H's size): each f32 is widened exactly, and four lane sums s0..s3 collect the elements with
// index ≡ 0, 1, 2, 3 (mod 4) over the first H4 = H & ~3 elements, combined as (s0 + s1) + (s2 + s3),
// then the tail elements are added one by one. eps arrives as f32 and is widened.
//
// rmsnorm:   ss = Σ x² (order above); r = f32(1 / sqrt(ss / H + eps));
//            out = f32(f32(x · r) · w)           (HF LlamaRMSNorm: x · rsqrt(…), then weight ·)
// layernorm: mean = Σ x / H; var = Σ (x − mean)² / H (two passes, order above, all f64);
//            r = f32(1 / sqrt(var + eps)); m = f32(mean);
//            out = f32(f32(f32(f32(x − m) · r) · w) + b)
// sqrt is correctly rounded in both wasm and JS, so the twins agree bit for bit.

/** Σ over one row of (x − shift)² (square = true) or of (x − shift) (square = false), in f64. */
// @ts-ignore: decorator
@inline function rowSum(row: usize, H: i32, shift: f64, square: bool): f64 {
  const H4 = H & ~3
  const shiftV = f64x2.splat(shift)
  let lo = f64x2.splat(0), hi = f64x2.splat(0)
  for (let k = 0; k < H4; k += 4) {
    const v = v128.load(row + (<usize>k << 2))
    let a = f64x2.sub(f64x2.promote_low_f32x4(v), shiftV)
    let b = f64x2.sub(f64x2.promote_low_f32x4(v128.shuffle<f32>(v, v, 2, 3, 0, 1)), shiftV)
    if (square) { a = f64x2.mul(a, a); b = f64x2.mul(b, b) }
    lo = f64x2.add(lo, a)
    hi = f64x2.add(hi, b)
  }
  let s = (f64x2.extract_lane(lo, 0) + f64x2.extract_lane(lo, 1)) +
    (f64x2.extract_lane(hi, 0) + f64x2.extract_lane(hi, 1))
  for (let k = H4; k < H; k++) {
    const d = <f64>load<f32>(row + (<usize>k << 2)) - shift
    s += square ? d * d : d
  }
  return s
}

/** out[t, ·] = x[t, ·] · w / sqrt(mean(x[t, ·]²) + eps); out may alias x. */
export function rmsnorm(x: usize, w: usize, out: usize, T: i32, H: i32, eps: f32): void {
  if (H <= 0) return
  const H4 = H & ~3
  for (let t = 0; t < T; t++) {
    const rowOffset = (<usize>t * <usize>H) << 2
    const row = x + rowOffset, dst = out + rowOffset
    const ss = rowSum(row, H, 0, true)
    const r = <f32>(1.0 / Math.sqrt(ss / <f64>H + <f64>eps))
    const rv = f32x4.splat(r)
    for (let k = 0; k < H4; k += 4) {
      const o = <usize>k << 2
      v128.store(dst + o, f32x4.mul(f32x4.mul(v128.load(row + o), rv), v128.load(w + o)))
    }
    for (let k = H4; k < H; k++) {
      const o = <usize>k << 2
      store<f32>(dst + o, (load<f32>(row + o) * r) * load<f32>(w + o))
    }
  }
}

/** out[t, ·] = (x[t, ·] − mean) / sqrt(var + eps) · w + b; out may alias x. */
export function layernorm(x: usize, w: usize, b: usize, out: usize, T: i32, H: i32, eps: f32): void {
  if (H <= 0) return
  const H4 = H & ~3
  for (let t = 0; t < T; t++) {
    const rowOffset = (<usize>t * <usize>H) << 2
    const row = x + rowOffset, dst = out + rowOffset
    const mean = rowSum(row, H, 0, false) / <f64>H
    const variance = rowSum(row, H, mean, true) / <f64>H
    const r = <f32>(1.0 / Math.sqrt(variance + <f64>eps))
    const m = <f32>mean
    const rv = f32x4.splat(r), mv = f32x4.splat(m)
    for (let k = 0; k < H4; k += 4) {
      const o = <usize>k << 2
      const centred = f32x4.sub(v128.load(row + o), mv)
      v128.store(dst + o, f32x4.add(f32x4.mul(f32x4.mul(centred, rv), v128.load(w + o)), v128.load(b + o)))
    }
    for (let k = H4; k < H; k++) {
      const o = <usize>k << 2
      store<f32>(dst + o, ((load<f32>(row + o) - m) * r) * load<f32>(w + o) + load<f32>(b + o))
    }
  }
}
