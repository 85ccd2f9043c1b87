// Plain-TS twin of kernels/assembly/backward-rope.ts, bit-exact: the rotation by −angle, in place on a
// gradient [T, nHeads·headDim]. Each pair (da, db) becomes
//   da' = f32(f32(da·c) + f32(db·s)),   db' = f32(f32(db·c) − f32(da·s))

import { requireLength, requireSizes } from './matmul'

const f = Math.fround

function check(
  name: string,
  dx: Float32Array,
  cos: Float32Array,
  sin: Float32Array,
  T: number,
  nHeads: number,
  headDim: number,
): void {
  requireSizes(name, { T, nHeads, headDim })
  requireLength(name, 'dx', dx, T * nHeads * headDim)
  requireLength(name, 'cos', cos, T * (headDim >> 1))
  requireLength(name, 'sin', sin, T * (headDim >> 1))
}

function rotateBack(
  dx: Float32Array,
  cos: Float32Array,
  sin: Float32Array,
  T: number,
  nHeads: number,
  headDim: number,
  interleaved: boolean,
): void {
  const half = headDim >> 1
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < nHeads; h++) {
      const base = (t * nHeads + h) * headDim
      for (let i = 0; i < half; i++) {
        const ia = interleaved ? base + 2 * i : base + i
        const ib = interleaved ? ia + 1 : ia + half
        const a = dx[ia],
          b = dx[ib]
        const c = cos[t * half + i],
          s = sin[t * half + i]
        dx[ia] = f(f(a * c) + f(b * s))
        dx[ib] = f(f(b * c) - f(a * s))
      }
    }
  }
}

/** HF layout (pairs i, i + headDim/2), in place. */
export function ropeHalfBackward(
  dx: Float32Array,
  cos: Float32Array,
  sin: Float32Array,
  T: number,
  nHeads: number,
  headDim: number,
): void {
  check('rope_half_backward', dx, cos, sin, T, nHeads, headDim)
  rotateBack(dx, cos, sin, T, nHeads, headDim, false)
}

/** GGUF layout (pairs 2i, 2i + 1), in place. */
export function ropeInterleavedBackward(
  dx: Float32Array,
  cos: Float32Array,
  sin: Float32Array,
  T: number,
  nHeads: number,
  headDim: number,
): void {
  check('rope_interleaved_backward', dx, cos, sin, T, nHeads, headDim)
  rotateBack(dx, cos, sin, T, nHeads, headDim, true)
}
