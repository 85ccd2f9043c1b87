// Causal multi-head attention with grouped KV heads, for heads [h0, h1) so workers can split the
// heads of one layer. Twin: kernels/reference/attention.ts (bit-exact).
//
// q and out are [T, nHeads·headDim], k and v are [T, nKV·headDim]; query head h reads KV head
// h / (nHeads / nKV). scratch holds T f32 of this call's own (scores, then probabilities).
// For each head h and query i, in this order:
//   scale = f32(1 / sqrt(headDim))   (computed in f64, rounded once)
//   s_j = f32(dot(q_i, k_j) · scale) for j = 0…i, dot in matmul's order: four f32 lane sums over
//         d < D4 = headDim & ~3, combined (l0 + l1) + (l2 + l3), then the tail d one by one
//   m = max_j s_j (plain `>` scan from j = 0)
//   p_j = expf32(f32(s_j − m)) (softmax.ts);  S = Σ_j p_j in f64 from j = 0;  inv = f32(1 / S)
//   out_i[d] = f32(acc_d · inv), acc_d = Σ_j f32(p_j · v_j[d]) accumulated in f32 from j = 0
// (normalising after the weighted sum instead of before saves i multiplies per output; it moves
// results by an f32 rounding, not more). T = 1 gives p_0 = 1 exactly, so out = v.

import { expf32, expf32x4 } from './softmax'

// @ts-ignore: decorator
@inline function dot(a: usize, b: usize, D: i32): f32 {
  const D4 = D & ~3
  let acc = f32x4.splat(0)
  for (let d = 0; d < D4; d += 4) {
    const o = <usize>d << 2
    acc = f32x4.add(acc, f32x4.mul(v128.load(a + o), v128.load(b + o)))
  }
  let s: f32 = (f32x4.extract_lane(acc, 0) + f32x4.extract_lane(acc, 1)) +
    (f32x4.extract_lane(acc, 2) + f32x4.extract_lane(acc, 3))
  for (let d = D4; d < D; d++) s += load<f32>(a + (<usize>d << 2)) * load<f32>(b + (<usize>d << 2))
  return s
}

/**
 * Scores of one query against keys k0, k0 + kvRow, k0 + 2·kvRow, k0 + 3·kvRow (headDim = D4, a
 * multiple of 4), stored to out[0..4). A 4×4 transpose turns the four lane-sum vectors into lane
 * vectors L0..L3, so (L0 + L1) + (L2 + L3) is each key's (l0 + l1) + (l2 + l3): dot()'s order.
 */
// @ts-ignore: decorator
@inline function scores4(qi: usize, k0: usize, kvRow: usize, D4: i32, scale: f32, out: usize): void {
  const k1 = k0 + kvRow, k2 = k1 + kvRow, k3 = k2 + kvRow
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0)
  for (let d = 0; d < D4; d += 4) {
    const o = <usize>d << 2
    const qv = v128.load(qi + o)
    a0 = f32x4.add(a0, f32x4.mul(qv, v128.load(k0 + o)))
    a1 = f32x4.add(a1, f32x4.mul(qv, v128.load(k1 + o)))
    a2 = f32x4.add(a2, f32x4.mul(qv, v128.load(k2 + o)))
    a3 = f32x4.add(a3, f32x4.mul(qv, v128.load(k3 + o)))
  }
  const lo01 = v128.shuffle<f32>(a0, a1, 0, 4, 1, 5), hi01 = v128.shuffle<f32>(a0, a1, 2, 6, 3, 7)
  const lo23 = v128.shuffle<f32>(a2, a3, 0, 4, 1, 5), hi23 = v128.shuffle<f32>(a2, a3, 2, 6, 3, 7)
  const l0 = v128.shuffle<f32>(lo01, lo23, 0, 1, 4, 5), l1 = v128.shuffle<f32>(lo01, lo23, 2, 3, 6, 7)
  const l2 = v128.shuffle<f32>(hi01, hi23, 0, 1, 4, 5), l3 = v128.shuffle<f32>(hi01, hi23, 2, 3, 6, 7)
  const sums = f32x4.add(f32x4.add(l0, l1), f32x4.add(l2, l3))
  v128.store(out, f32x4.mul(sums, f32x4.splat(scale)))
}

export function attention_causal(
  q: usize, k: usize, v: usize, out: usize, scratch: usize,
  T: i32, nHeads: i32, nKV: i32, headDim: i32, h0: i32, h1: i32,
): void {
  // Shapes the caller should never send; returning beats dividing by zero or reading garbage.
  if (nKV <= 0 || nHeads <= 0 || nHeads % nKV != 0 || headDim <= 0) return
  if (h0 < 0) h0 = 0
  if (h1 > nHeads) h1 = nHeads
  const group = nHeads / nKV
  const scale = <f32>(1.0 / Math.sqrt(<f64>headDim))
  const qRow = (<usize>nHeads * <usize>headDim) << 2
  const kvRow = (<usize>nKV * <usize>headDim) << 2
  const headBytes = <usize>headDim << 2
  const D32 = headDim & ~31, D8 = headDim & ~7, D4 = headDim & ~3
  for (let h = h0; h < h1; h++) {
    const kvOff = <usize>(h / group) * headBytes
    const kh = k + kvOff, vh = v + kvOff
    for (let i = 0; i < T; i++) {
      const qi = q + <usize>i * qRow + <usize>h * headBytes
      const oi = out + <usize>i * qRow + <usize>h * headBytes
      const count = i + 1, count4 = count & ~3
      let j = 0
      // Four keys at a time share each q load when headDim has no tail (every real model).
      if (D4 == headDim) {
        for (; j < count4; j += 4) scores4(qi, kh + <usize>j * kvRow, kvRow, D4, scale, scratch + (<usize>j << 2))
      }
      for (; j < count; j++) store<f32>(scratch + (<usize>j << 2), dot(qi, kh + <usize>j * kvRow, headDim) * scale)
      let m: f32 = -Infinity
      for (j = 0; j < count; j++) {
        const s = load<f32>(scratch + (<usize>j << 2))
        if (s > m) m = s
      }
      // p_j four at a time; S is still summed one j after another, in f64.
      let sum: f64 = 0
      const mv = f32x4.splat(m)
      j = 0
      for (; j < count4; j += 4) {
        const sp = scratch + (<usize>j << 2)
        const p = expf32x4(f32x4.sub(v128.load(sp), mv))
        v128.store(sp, p)
        sum += <f64>f32x4.extract_lane(p, 0)
        sum += <f64>f32x4.extract_lane(p, 1)
        sum += <f64>f32x4.extract_lane(p, 2)
        sum += <f64>f32x4.extract_lane(p, 3)
      }
      for (; j < count; j++) {
        const sp = scratch + (<usize>j << 2)
        const p = expf32(load<f32>(sp) - m)
        store<f32>(sp, p)
        sum += <f64>p
      }
      const inv = <f32>(1.0 / sum)
      const invV = f32x4.splat(inv)
      // Σ_j p_j·v_j over 32 output lanes at a time (eight independent add chains), then 8, 4 and
      // single lanes; every lane still sums j = 0…i in order.
      let d = 0
      for (; d < D32; d += 32) {
        const vd = vh + (<usize>d << 2)
        let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0)
        let a4 = f32x4.splat(0), a5 = f32x4.splat(0), a6 = f32x4.splat(0), a7 = f32x4.splat(0)
        for (let j = 0; j <= i; j++) {
          const p = f32x4.splat(load<f32>(scratch + (<usize>j << 2)))
          const vj = vd + <usize>j * kvRow
          a0 = f32x4.add(a0, f32x4.mul(p, v128.load(vj)))
          a1 = f32x4.add(a1, f32x4.mul(p, v128.load(vj, 16)))
          a2 = f32x4.add(a2, f32x4.mul(p, v128.load(vj, 32)))
          a3 = f32x4.add(a3, f32x4.mul(p, v128.load(vj, 48)))
          a4 = f32x4.add(a4, f32x4.mul(p, v128.load(vj, 64)))
          a5 = f32x4.add(a5, f32x4.mul(p, v128.load(vj, 80)))
          a6 = f32x4.add(a6, f32x4.mul(p, v128.load(vj, 96)))
          a7 = f32x4.add(a7, f32x4.mul(p, v128.load(vj, 112)))
        }
        const od = oi + (<usize>d << 2)
        v128.store(od, f32x4.mul(a0, invV))
        v128.store(od, f32x4.mul(a1, invV), 16)
        v128.store(od, f32x4.mul(a2, invV), 32)
        v128.store(od, f32x4.mul(a3, invV), 48)
        v128.store(od, f32x4.mul(a4, invV), 64)
        v128.store(od, f32x4.mul(a5, invV), 80)
        v128.store(od, f32x4.mul(a6, invV), 96)
        v128.store(od, f32x4.mul(a7, invV), 112)
      }
      for (; d < D8; d += 8) {
        const vd = vh + (<usize>d << 2)
        let a0 = f32x4.splat(0), a1 = f32x4.splat(0)
        for (let j = 0; j <= i; j++) {
          const p = f32x4.splat(load<f32>(scratch + (<usize>j << 2)))
          const vj = vd + <usize>j * kvRow
          a0 = f32x4.add(a0, f32x4.mul(p, v128.load(vj)))
          a1 = f32x4.add(a1, f32x4.mul(p, v128.load(vj, 16)))
        }
        const od = oi + (<usize>d << 2)
        v128.store(od, f32x4.mul(a0, invV))
        v128.store(od, f32x4.mul(a1, invV), 16)
      }
      for (; d < D4; d += 4) {
        const vd = vh + (<usize>d << 2)
        let a = f32x4.splat(0)
        for (let j = 0; j <= i; j++) {
          a = f32x4.add(a, f32x4.mul(f32x4.splat(load<f32>(scratch + (<usize>j << 2))), v128.load(vd + <usize>j * kvRow)))
        }
        v128.store(oi + (<usize>d << 2), f32x4.mul(a, invV))
      }
      for (; d < headDim; d++) {
        const vd = vh + (<usize>d << 2)
        let a: f32 = 0
        for (let j = 0; j <= i; j++) a += load<f32>(scratch + (<usize>j << 2)) * load<f32>(vd + <usize>j * kvRow)
        store<f32>(oi + (<usize>d << 2), a * inv)
      }
    }
  }
}
