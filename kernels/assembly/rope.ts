// Rotary position embedding, in place, from a caller-computed table (kernels/reference/rope.ts
// ropeTable): keeping cos/sin out of the kernel keeps the twins bit-exact. Twin:
// kernels/reference/rope.ts.
//
// x is [T, nHeads·headDim] (row stride nHeads·headDim); cos and sin are [T, headDim/2], entry i of
// row t being the angle t·inv_freq_i. Each pair (a, b) at frequency i becomes
//   a' = f32(f32(a·c) − f32(b·s)),   b' = f32(f32(a·s) + f32(b·c))
// rope_half (HF rotate_half layout): a = x[i], b = x[i + headDim/2].
// rope_interleaved (llama.cpp / GGUF layout): a = x[2i], b = x[2i + 1].
// An odd headDim leaves its last element alone (there is no such model; documented, not rejected).

/** HF layout: pairs (i, i + headDim/2). */
export function rope_half(x: usize, cos: usize, sin: usize, T: i32, nHeads: i32, headDim: i32): void {
  const half = headDim >> 1
  const half4 = half & ~3
  const halfBytes = <usize>half << 2
  for (let t = 0; t < T; t++) {
    const c = cos + <usize>t * halfBytes, s = sin + <usize>t * halfBytes
    for (let h = 0; h < nHeads; h++) {
      const a = x + ((<usize>t * <usize>nHeads + <usize>h) * <usize>headDim << 2)
      const b = a + halfBytes
      let i = 0
      for (; i < half4; i += 4) {
        const o = <usize>i << 2
        const va = v128.load(a + o), vb = v128.load(b + o)
        const vc = v128.load(c + o), vs = v128.load(s + o)
        v128.store(a + o, f32x4.sub(f32x4.mul(va, vc), f32x4.mul(vb, vs)))
        v128.store(b + o, f32x4.add(f32x4.mul(va, vs), f32x4.mul(vb, vc)))
      }
      for (; i < half; i++) {
        const o = <usize>i << 2
        const va = load<f32>(a + o), vb = load<f32>(b + o)
        const vc = load<f32>(c + o), vs = load<f32>(s + o)
        store<f32>(a + o, va * vc - vb * vs)
        store<f32>(b + o, va * vs + vb * vc)
      }
    }
  }
}

/** llama.cpp / GGUF layout: pairs (2i, 2i + 1). */
export function rope_interleaved(x: usize, cos: usize, sin: usize, T: i32, nHeads: i32, headDim: i32): void {
  const half = headDim >> 1
  const half4 = half & ~3
  const halfBytes = <usize>half << 2
  for (let t = 0; t < T; t++) {
    const c = cos + <usize>t * halfBytes, s = sin + <usize>t * halfBytes
    for (let h = 0; h < nHeads; h++) {
      const head = x + ((<usize>t * <usize>nHeads + <usize>h) * <usize>headDim << 2)
      let i = 0
      // Four pairs per step: de-interleave 8 floats into a = x[2i…] and b = x[2i+1…], rotate, re-interleave.
      for (; i < half4; i += 4) {
        const p = head + (<usize>i << 3)
        const v0 = v128.load(p), v1 = v128.load(p, 16)
        const va = v128.shuffle<f32>(v0, v1, 0, 2, 4, 6)
        const vb = v128.shuffle<f32>(v0, v1, 1, 3, 5, 7)
        const o = <usize>i << 2
        const vc = v128.load(c + o), vs = v128.load(s + o)
        const ra = f32x4.sub(f32x4.mul(va, vc), f32x4.mul(vb, vs))
        const rb = f32x4.add(f32x4.mul(va, vs), f32x4.mul(vb, vc))
        v128.store(p, v128.shuffle<f32>(ra, rb, 0, 4, 1, 5))
        v128.store(p, v128.shuffle<f32>(ra, rb, 2, 6, 3, 7), 16)
      }
      for (; i < half; i++) {
        const p = head + (<usize>i << 3)
        const o = <usize>i << 2
        const va = load<f32>(p), vb = load<f32>(p, 4)
        const vc = load<f32>(c + o), vs = load<f32>(s + o)
        store<f32>(p, va * vc - vb * vs)
        store<f32>(p, va * vs + vb * vc, 4)
      }
    }
  }
}
