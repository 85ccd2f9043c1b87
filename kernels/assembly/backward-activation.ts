// Backward of the SwiGLU product out = silu(g) · u. Twin: kernels/reference/backward-activation.ts
// (bit-exact). f32 arithmetic, four lanes at a time with expf32x4 (softmax.ts), scalar expf32 in the tail:
//   s = f32(1 / f32(1 + expf32(−g)))          σ(g)
//   du = f32(dout · f32(g · s))                ∂out/∂u = silu(g)
//   dg = f32(f32(dout · u) · f32(s · f32(1 + f32(g · f32(1 − s)))))   silu'(g) = σ(g)·(1 + g·(1 − σ(g)))
// WRITES dg and du; they may alias g and u (each element is read before it is written).

import { expf32, expf32x4 } from './softmax'

export function silu_mul_backward(g: usize, u: usize, dout: usize, dg: usize, du: usize, n: i32): void {
  const n4 = n & ~3
  const one = f32x4.splat(1)
  let i = 0
  for (; i < n4; i += 4) {
    const o = <usize>i << 2
    const gv = v128.load(g + o), uv = v128.load(u + o), dv = v128.load(dout + o)
    const s = f32x4.div(one, f32x4.add(one, expf32x4(f32x4.neg(gv))))
    const ds = f32x4.mul(s, f32x4.add(one, f32x4.mul(gv, f32x4.sub(one, s))))
    v128.store(du + o, f32x4.mul(dv, f32x4.mul(gv, s)))
    v128.store(dg + o, f32x4.mul(f32x4.mul(dv, uv), ds))
  }
  for (; i < n; i++) {
    const o = <usize>i << 2
    const gv = load<f32>(g + o), uv = load<f32>(u + o), dv = load<f32>(dout + o)
    const s: f32 = 1 / (1 + expf32(-gv))
    const ds = s * (1 + gv * (1 - s))
    store<f32>(du + o, dv * (gv * s))
    store<f32>(dg + o, (dv * uv) * ds)
  }
}
