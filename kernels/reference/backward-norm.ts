// Plain-TS twin of kernels/assembly/backward-norm.ts, bit-exact. Per row, in f64:
//   ss = Σ x², dot = Σ (dy·w)·x (four lane sums over k < H & ~3, (s0 + s1) + (s2 + s3), then the tail);
//   r = 1 / sqrt(ss/H + eps); c = ((r·r)·r)·dot/H; dx_k = f32(dx_k + f32(r·(dy_k·w_k) − c·x_k)).
// eps is rounded to f32 first, as the wasm signature does. ACCUMULATES into dx.

import { requireLength, requireSizes } from './matmul'

const f = Math.fround

export function rmsnormBackward(
  x: Float32Array,
  w: Float32Array,
  dy: Float32Array,
  dx: Float32Array,
  T: number,
  H: number,
  eps: number,
): void {
  const name = 'rmsnorm_backward'
  requireSizes(name, { T, H })
  requireLength(name, 'x', x, T * H)
  requireLength(name, 'dy', dy, T * H)
  requireLength(name, 'dx', dx, T * H)
  requireLength(name, 'w', w, H)
  if (H === 0) return
  const eps32 = f(eps)
  const H4 = H & ~3
  for (let t = 0; t < T; t++) {
    const off = t * H
    const ss = [0, 0, 0, 0],
      dt = [0, 0, 0, 0]
    for (let k = 0; k < H4; k++) {
      const xv = x[off + k]
      ss[k & 3] += xv * xv
      dt[k & 3] += dy[off + k] * w[k] * xv
    }
    let sumSq = ss[0] + ss[1] + (ss[2] + ss[3])
    let dot = dt[0] + dt[1] + (dt[2] + dt[3])
    for (let k = H4; k < H; k++) {
      const xv = x[off + k]
      sumSq += xv * xv
      dot += dy[off + k] * w[k] * xv
    }
    const r = 1.0 / Math.sqrt(sumSq / H + eps32)
    const c = (r * r * r * dot) / H
    for (let k = 0; k < H; k++) {
      dx[off + k] = f(dx[off + k] + f(r * (dy[off + k] * w[k]) - c * x[off + k]))
    }
  }
}
