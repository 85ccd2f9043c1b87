// RoPE backward: the transpose of a rotation is the rotation by −angle. In place on the gradient of the
// rotated q or k. Twin: kernels/reference/backward-rope.ts (bit-exact). Same cos/sin table and layouts as
// rope.ts; each gradient pair (da, db) at frequency i becomes
//   da' = f32(f32(da·c) + f32(db·s)),   db' = f32(f32(db·c) − f32(da·s))
// rope_half_backward: a = x[i], b = x[i + headDim/2]; rope_interleaved_backward: a = x[2i], b = x[2i + 1].

/** HF layout: pairs (i, i + headDim/2). */
export function rope_half_backward(dx: usize, cos: usize, sin: usize, T: i32, nHeads: i32, headDim: i32): void {
  const half = headDim >> 1
  const half4 = half & ~3
  const halfBytes = <usize>half << 2
  for (let t = 0; t < T; t++) {
    const c = cos + <usize>t * halfBytes, s = sin + <usize>t * halfBytes
    for (let h = 0; h < nHeads; h++) {
      const a = dx + ((<usize>t * <usize>nHeads + <usize>h) * <usize>headDim << 2)
      const b = a + halfBytes
      let i = 0
      for (; i < half4; i += 4) {
        const o = <usize>i << 2
        const va = v128.load(a + o), vb = v128.load(b + o)
        const vc = v128.load(c + o), vs = v128.load(s + o)
        v128.store(a + o, f32x4.add(f32x4.mul(va, vc), f32x4.mul(vb, vs)))
        v128.store(b + o, f32x4.sub(f32x4.mul(vb, vc), f32x4.mul(va, vs)))
      }
      for (; i < half; i++) {
        const o = <usize>i << 2
        const va = load<f32>(a + o), vb = load<f32>(b + o)
        const vc = load<f32>(c + o), vs = load<f32>(s + o)
        store<f32>(a + o, va * vc + vb * vs)
        store<f32>(b + o, vb * vc - va * vs)
      }
    }
  }
}

/** llama.cpp / GGUF layout: pairs (2i, 2i + 1). */
export function rope_interleaved_backward(dx: usize, cos: usize, sin: usize, T: i32, nHeads: i32, headDim: i32): void {
  const half = headDim >> 1
  const halfBytes = <usize>half << 2
  for (let t = 0; t < T; t++) {
    const c = cos + <usize>t * halfBytes, s = sin + <usize>t * halfBytes
    for (let h = 0; h < nHeads; h++) {
      const head = dx + ((<usize>t * <usize>nHeads + <usize>h) * <usize>headDim << 2)
      for (let i = 0; i < half; i++) {
        const p = head + (<usize>i << 3)
        const o = <usize>i << 2
        const va = load<f32>(p), vb = load<f32>(p, 4)
        const vc = load<f32>(c + o), vs = load<f32>(s + o)
        store<f32>(p, va * vc + vb * vs)
        store<f32>(p, vb * vc - va * vs, 4)
      }
    }
  }
}
