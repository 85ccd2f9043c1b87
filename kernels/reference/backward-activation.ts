// Plain-TS twin of kernels/assembly/backward-activation.ts, bit-exact (f32 ops, expF32):
//   s = f32(1 / f32(1 + expF32(−g)));  du = f32(dout · f32(g · s));
//   dg = f32(f32(dout · u) · f32(s · f32(1 + f32(g · f32(1 − s)))))

import { requireLength, requireSizes } from './matmul'
import { expF32 } from './softmax'

const f = Math.fround

/** WRITES dg and du (which may be g and u) for out = silu(g) · u and its gradient dout. */
export function siluMulBackward(
  g: Float32Array,
  u: Float32Array,
  dout: Float32Array,
  dg: Float32Array,
  du: Float32Array,
  n: number,
): void {
  const name = 'silu_mul_backward'
  requireSizes(name, { n })
  for (const [label, a] of [
    ['g', g],
    ['u', u],
    ['dout', dout],
    ['dg', dg],
    ['du', du],
  ] as const)
    requireLength(name, label, a, n)
  for (let i = 0; i < n; i++) {
    const gv = g[i],
      uv = u[i],
      dv = dout[i]
    const s = f(1 / f(1 + expF32(-gv)))
    const ds = f(s * f(1 + f(gv * f(1 - s))))
    du[i] = f(dv * f(gv * s))
    dg[i] = f(f(dv * uv) * ds)
  }
}
