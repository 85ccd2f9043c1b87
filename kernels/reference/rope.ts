// Plain-TS twin of kernels/assembly/rope.ts (bit-exact), and the cos/sin table both take.
//
// x is [T, nHeads·headDim]; cos and sin are [T, headDim/2]. Each pair (a, b) at frequency i becomes
//   a' = f32(f32(a·c) − f32(b·s)),   b' = f32(f32(a·s) + f32(b·c))
// ropeHalf (HF rotate_half): a = x[i], b = x[i + headDim/2]. ropeInterleaved (llama.cpp / GGUF):
// a = x[2i], b = x[2i + 1]. An odd headDim leaves its last element alone.

import { kernelArgError, requireLength, requireSizes } from './matmul'

const f = Math.fround

export interface RopeTable {
  cos: Float32Array
  sin: Float32Array
}

/**
 * cos/sin of pos·inv_freq_i for pos = pos0 … pos0 + T − 1 and i < headDim/2, as HF computes them in
 * float32: inv_freq_i = f32(1 / f32(theta^f32(2i / headDim))), angle = f32(pos · inv_freq_i),
 * cos/sin rounded to f32 (JS's Math.cos/sin of the f32 angle; PyTorch's may differ by an ulp).
 */
export function ropeTable(T: number, headDim: number, theta: number, pos0 = 0): RopeTable {
  requireSizes('ropeTable', { T, headDim, pos0 })
  if (!(theta > 0) || !Number.isFinite(theta))
    throw kernelArgError('ropeTable', `theta = ${theta} is not a positive number`)
  const half = headDim >> 1
  const invFreq = new Float32Array(half)
  for (let i = 0; i < half; i++) invFreq[i] = f(1 / f(Math.pow(theta, f((2 * i) / headDim))))
  const cos = new Float32Array(T * half),
    sin = new Float32Array(T * half)
  for (let t = 0; t < T; t++) {
    const pos = f(pos0 + t)
    for (let i = 0; i < half; i++) {
      const angle = f(pos * invFreq[i])
      cos[t * half + i] = Math.cos(angle)
      sin[t * half + i] = Math.sin(angle)
    }
  }
  return { cos, sin }
}

function checkRope(name: string, x: Float32Array, table: RopeTable, T: number, nHeads: number, headDim: number): void {
  requireSizes(name, { T, nHeads, headDim })
  requireLength(name, 'x', x, T * nHeads * headDim)
  requireLength(name, 'cos', table.cos, T * (headDim >> 1))
  requireLength(name, 'sin', table.sin, T * (headDim >> 1))
}

/** HF layout, in place: pairs (i, i + headDim/2). */
export function ropeHalf(
  x: Float32Array,
  cos: Float32Array,
  sin: Float32Array,
  T: number,
  nHeads: number,
  headDim: number,
): void {
  checkRope('rope_half', x, { cos, sin }, T, nHeads, headDim)
  const half = headDim >> 1
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < nHeads; h++) {
      const base = (t * nHeads + h) * headDim
      for (let i = 0; i < half; i++) {
        const a = x[base + i],
          b = x[base + half + i]
        const c = cos[t * half + i],
          s = sin[t * half + i]
        x[base + i] = f(f(a * c) - f(b * s))
        x[base + half + i] = f(f(a * s) + f(b * c))
      }
    }
  }
}

/** llama.cpp / GGUF layout, in place: pairs (2i, 2i + 1). */
export function ropeInterleaved(
  x: Float32Array,
  cos: Float32Array,
  sin: Float32Array,
  T: number,
  nHeads: number,
  headDim: number,
): void {
  checkRope('rope_interleaved', x, { cos, sin }, T, nHeads, headDim)
  const half = headDim >> 1
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < nHeads; h++) {
      const base = (t * nHeads + h) * headDim
      for (let i = 0; i < half; i++) {
        const a = x[base + 2 * i],
          b = x[base + 2 * i + 1]
        const c = cos[t * half + i],
          s = sin[t * half + i]
        x[base + 2 * i] = f(f(a * c) - f(b * s))
        x[base + 2 * i + 1] = f(f(a * s) + f(b * c))
      }
    }
  }
}
