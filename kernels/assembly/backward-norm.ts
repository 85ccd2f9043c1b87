// RMSNorm backward (the norm's scale stays frozen, so only dx). Twin: kernels/reference/backward-norm.ts
// (bit-exact).
//
// Forward: y = x · r · w with r = 1 / sqrt(Σx²/H + eps). With g = dy · w:
//   dx = r · g − x · r³ · (Σ_k g_k · x_k) / H
// Per row, in f64 (every f32 is widened exactly; g_k = dy_k · w_k is exact in f64):
//   ss  = Σ x_k²        four lane sums (k ≡ 0, 1, 2, 3 mod 4) over k < H4 = H & ~3, combined
//   dot = Σ g_k · x_k   (s0 + s1) + (s2 + s3), then the tail one by one (norm.ts's order)
//   r = 1 / sqrt(ss / H + eps);  c = ((r · r) · r) · dot / H
//   dx_k = f32(dx_k + f32(r · g_k − c · x_k))        ACCUMULATES into dx (the residual's gradient)
// The forward rounds r to f32 before using it; the gradient uses the unrounded r (it differentiates
// the function, not its rounding).

// @ts-ignore: decorator
@inline function lanes(v: v128, hi: bool): v128 {
  return hi ? f64x2.promote_low_f32x4(v128.shuffle<f32>(v, v, 2, 3, 0, 1)) : f64x2.promote_low_f32x4(v)
}

/** dx[t, ·] += ∂(rmsnorm(x[t, ·]) · dy[t, ·]) / ∂x; dx must not alias x, w or dy. */
export function rmsnorm_backward(x: usize, w: usize, dy: usize, dx: usize, T: i32, H: i32, eps: f32): void {
  if (H <= 0) return
  const H4 = H & ~3
  for (let t = 0; t < T; t++) {
    const off = (<usize>t * <usize>H) << 2
    const xr = x + off, dyr = dy + off, dxr = dx + off
    let ssLo = f64x2.splat(0), ssHi = f64x2.splat(0), dLo = f64x2.splat(0), dHi = f64x2.splat(0)
    for (let k = 0; k < H4; k += 4) {
      const o = <usize>k << 2
      const xv = v128.load(xr + o), dv = v128.load(dyr + o), wv = v128.load(w + o)
      const xl = lanes(xv, false), xh = lanes(xv, true)
      ssLo = f64x2.add(ssLo, f64x2.mul(xl, xl))
      ssHi = f64x2.add(ssHi, f64x2.mul(xh, xh))
      dLo = f64x2.add(dLo, f64x2.mul(f64x2.mul(lanes(dv, false), lanes(wv, false)), xl))
      dHi = f64x2.add(dHi, f64x2.mul(f64x2.mul(lanes(dv, true), lanes(wv, true)), xh))
    }
    let ss = (f64x2.extract_lane(ssLo, 0) + f64x2.extract_lane(ssLo, 1)) + (f64x2.extract_lane(ssHi, 0) + f64x2.extract_lane(ssHi, 1))
    let dot = (f64x2.extract_lane(dLo, 0) + f64x2.extract_lane(dLo, 1)) + (f64x2.extract_lane(dHi, 0) + f64x2.extract_lane(dHi, 1))
    for (let k = H4; k < H; k++) {
      const o = <usize>k << 2
      const xv = <f64>load<f32>(xr + o)
      ss += xv * xv
      dot += (<f64>load<f32>(dyr + o) * <f64>load<f32>(w + o)) * xv
    }
    const r = 1.0 / Math.sqrt(ss / <f64>H + <f64>eps)
    const c = ((r * r) * r) * dot / <f64>H
    const rv = f64x2.splat(r), cv = f64x2.splat(c)
    for (let k = 0; k < H4; k += 4) {
      const o = <usize>k << 2
      const xv = v128.load(xr + o), dv = v128.load(dyr + o), wv = v128.load(w + o)
      const lo = f64x2.sub(f64x2.mul(rv, f64x2.mul(lanes(dv, false), lanes(wv, false))), f64x2.mul(cv, lanes(xv, false)))
      const hi = f64x2.sub(f64x2.mul(rv, f64x2.mul(lanes(dv, true), lanes(wv, true))), f64x2.mul(cv, lanes(xv, true)))
      const d = v128.shuffle<f32>(f32x4.demote_f64x2_zero(lo), f32x4.demote_f64x2_zero(hi), 0, 1, 4, 5)
      v128.store(dxr + o, f32x4.add(v128.load(dxr + o), d))
    }
    for (let k = H4; k < H; k++) {
      const o = <usize>k << 2
      const g = <f64>load<f32>(dyr + o) * <f64>load<f32>(w + o)
      const d = <f32>(r * g - c * <f64>load<f32>(xr + o))
      store<f32>(dxr + o, load<f32>(dxr + o) + d)
    }
  }
}
