// Plain-TS twin of kernels/assembly/norm.ts, bit-exact.
//
// Row statistics in f64: four lane sums s0..s3 take the elements with index ≡ 0, 1, 2, 3 (mod 4)
// among the first H4 = H & ~3, combined as (s0 + s1) + (s2 + s3), then the tail one by one (the
// order of the SIMD kernel's two f64x2 accumulators). eps is rounded to f32 first, as the wasm
// signature does.
// rmsnorm:   r = f32(1 / sqrt(Σx² / H + eps)); out = f32(f32(x · r) · w)
// layernorm: mean = Σx / H; var = Σ(x − mean)² / H; r = f32(1 / sqrt(var + eps)); m = f32(mean);
//            out = f32(f32(f32(f32(x − m) · r) · w) + b)

import { requireLength, requireSizes } from './matmul'

const f = Math.fround

/** Σ over x[off, off + H) of (x − shift)² (square) or (x − shift), in the documented order. */
function rowSum(x: Float32Array, off: number, H: number, shift: number, square: boolean): number {
  const H4 = H & ~3
  let s0 = 0,
    s1 = 0,
    s2 = 0,
    s3 = 0
  for (let k = 0; k < H4; k += 4) {
    const d0 = x[off + k] - shift,
      d1 = x[off + k + 1] - shift
    const d2 = x[off + k + 2] - shift,
      d3 = x[off + k + 3] - shift
    if (square) {
      s0 += d0 * d0
      s1 += d1 * d1
      s2 += d2 * d2
      s3 += d3 * d3
    } else {
      s0 += d0
      s1 += d1
      s2 += d2
      s3 += d3
    }
  }
  let s = s0 + s1 + (s2 + s3)
  for (let k = H4; k < H; k++) {
    const d = x[off + k] - shift
    s += square ? d * d : d
  }
  return s
}

function checkRows(name: string, x: Float32Array, out: Float32Array, w: Float32Array, T: number, H: number): void {
  requireSizes(name, { T, H })
  requireLength(name, 'x', x, T * H)
  requireLength(name, 'out', out, T * H)
  requireLength(name, 'w', w, H)
}

/** out[t, ·] = x[t, ·] · w / sqrt(mean(x[t, ·]²) + eps); out may be x. */
export function rmsnorm(x: Float32Array, w: Float32Array, out: Float32Array, T: number, H: number, eps: number): void {
  checkRows('rmsnorm', x, out, w, T, H)
  if (H === 0) return
  const eps32 = f(eps)
  for (let t = 0; t < T; t++) {
    const off = t * H
    const r = f(1.0 / Math.sqrt(rowSum(x, off, H, 0, true) / H + eps32))
    for (let k = 0; k < H; k++) out[off + k] = f(f(x[off + k] * r) * w[k])
  }
}

/** out[t, ·] = (x[t, ·] − mean) / sqrt(var + eps) · w + b; out may be x. */
export function layernorm(
  x: Float32Array,
  w: Float32Array,
  b: Float32Array,
  out: Float32Array,
  T: number,
  H: number,
  eps: number,
): void {
  checkRows('layernorm', x, out, w, T, H)
  requireLength('layernorm', 'b', b, H)
  if (H === 0) return
  const eps32 = f(eps)
  for (let t = 0; t < T; t++) {
    const off = t * H
    const mean = rowSum(x, off, H, 0, false) / H
    const variance = rowSum(x, off, H, mean, true) / H
    const r = f(1.0 / Math.sqrt(variance + eps32))
    const m = f(mean)
    for (let k = 0; k < H; k++) out[off + k] = f(f(f(f(x[off + k] - m) * r) * w[k]) + b[k])
  }
}
