// Backward of causal attention with grouped KV heads (attention.ts), for KV heads [g0, g1) so workers can
// split one layer without two of them adding into the same dk/dv rows. Twin:
// kernels/reference/backward-attention.ts (bit-exact).
//
// q, dq are [T, nHeads·headDim]; k, v, dk, dv are [T, nKV·headDim]; dout is [T, nHeads·headDim]
// (the gradient of attention's output). q and k are the rotated ones the forward used. scratch holds
// 2·min(T, QBLOCK)·T f32 of this call's own. For query heads h of the range in order, queries
// i = 0 … T−1, keys j ≤ i:
//   the forward's probabilities, recomputed:
//     scale2 = f32(log2(e) / sqrt(headDim)); s_j = f32(dot(q_i, k_j) · scale2) (log2 units); m = max_j s_j
//     (`>` scan); e_j = softmaxExp2f32(f32(s_j − m)); S = Σ_j e_j in f64 from j = 0; inv = f32(1 / S); p_j = f32(e_j · inv)
//   dP_j = dot(dout_i, v_j);  D = f32(Σ_j f64(p_j) · f64(dP_j)) (f64, from j = 0)
//   g_j = f32(f32(p_j · f32(dP_j − D)) · scale), scale = f32(1 / sqrt(headDim)) (natural units)
//   dq_i[d] = Σ_j f32(g_j · k_j[d]) summed in f32 from j = 0           WRITES dq
//   dk_j[d] = f32(dk_j[d] + f32(g_j · q_i[d]))                        ACCUMULATES into dk
//   dv_j[d] = f32(dv_j[d] + f32(p_j · dout_i[d]))                     ACCUMULATES into dv
// dot(a, b) is matmul's order: four f32 lane sums over d < headDim & ~3, (l0 + l1) + (l2 + l3), then the
// tail. The caller zeroes dk and dv before the first call of a layer.
//
// Layout of the work (it never changes the order above): queries go in blocks of QBLOCK. For a block, the
// rows p_i·· and g_i·· are kept in scratch; dq_i is summed over j in registers; then each key j takes the
// block's terms for dk_j and dv_j in registers, i ascending, starting from what dk_j and dv_j already
// hold — the same sequence of f32 additions as adding them one query at a time.

import { LOG2E, softmaxExp2f32, softmaxExp2f32x4 } from './softmax'

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

const QBLOCK: i32 = 64

/**
 * f32 scores of one row against keys j0 … j0 + 3 (rows kvRow bytes apart, headDim D4, a multiple of 4),
 * as four dot()s: a 4×4 transpose turns the lane-sum vectors into lane vectors L0..L3, so
 * (L0 + L1) + (L2 + L3) is each key's (l0 + l1) + (l2 + l3).
 */
// @ts-ignore: decorator
@inline function dots4(a: usize, k0: usize, kvRow: usize, D4: i32): v128 {
  const k1 = k0 + kvRow, k2 = k1 + kvRow, k3 = k2 + kvRow
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0)
  for (let d = 0; d < D4; d += 4) {
    const o = <usize>d << 2
    const av = v128.load(a + o)
    a0 = f32x4.add(a0, f32x4.mul(av, v128.load(k0 + o)))
    a1 = f32x4.add(a1, f32x4.mul(av, v128.load(k1 + o)))
    a2 = f32x4.add(a2, f32x4.mul(av, v128.load(k2 + o)))
    a3 = f32x4.add(a3, f32x4.mul(av, v128.load(k3 + o)))
  }
  const lo01 = v128.shuffle<f32>(a0, a1, 0, 4, 1, 5), hi01 = v128.shuffle<f32>(a0, a1, 2, 6, 3, 7)
  const lo23 = v128.shuffle<f32>(a2, a3, 0, 4, 1, 5), hi23 = v128.shuffle<f32>(a2, a3, 2, 6, 3, 7)
  const l0 = v128.shuffle<f32>(lo01, lo23, 0, 1, 4, 5), l1 = v128.shuffle<f32>(lo01, lo23, 2, 3, 6, 7)
  const l2 = v128.shuffle<f32>(hi01, hi23, 0, 1, 4, 5), l3 = v128.shuffle<f32>(hi01, hi23, 2, 3, 6, 7)
  return f32x4.add(f32x4.add(l0, l1), f32x4.add(l2, l3))
}

/** Writes p_i· (probabilities) and g_i· (score gradients) of query row qi for keys 0 … i. */
// @ts-ignore: decorator
@inline function rowGradients(
  qi: usize, doi: usize, kh: usize, vh: usize, kvRow: usize, i: i32, headDim: i32, scale: f32, scale2: f32,
  p: usize, g: usize,
): void {
  const count = i + 1, count4 = count & ~3
  const D4 = headDim & ~3
  const vec = D4 == headDim
  const scaleV = f32x4.splat(scale), scale2V = f32x4.splat(scale2)
  let j = 0
  if (vec) for (; j < count4; j += 4) v128.store(p + (<usize>j << 2), f32x4.mul(dots4(qi, kh + <usize>j * kvRow, kvRow, D4), scale2V))
  for (; j < count; j++) store<f32>(p + (<usize>j << 2), dot(qi, kh + <usize>j * kvRow, headDim) * scale2)
  let m: f32 = -Infinity
  for (j = 0; j < count; j++) {
    const s = load<f32>(p + (<usize>j << 2))
    if (s > m) m = s
  }
  let sum: f64 = 0
  const mv = f32x4.splat(m)
  for (j = 0; j < count4; j += 4) {
    const e = softmaxExp2f32x4(f32x4.sub(v128.load(p + (<usize>j << 2)), mv))
    v128.store(p + (<usize>j << 2), e)
    sum += <f64>f32x4.extract_lane(e, 0)
    sum += <f64>f32x4.extract_lane(e, 1)
    sum += <f64>f32x4.extract_lane(e, 2)
    sum += <f64>f32x4.extract_lane(e, 3)
  }
  for (; j < count; j++) {
    const e = softmaxExp2f32(load<f32>(p + (<usize>j << 2)) - m)
    store<f32>(p + (<usize>j << 2), e)
    sum += <f64>e
  }
  const inv = <f32>(1.0 / sum)
  const invV = f32x4.splat(inv)
  // p_j and dP_j (into g), then D in f64, j in order.
  j = 0
  if (vec) {
    for (; j < count4; j += 4) {
      const o = <usize>j << 2
      v128.store(p + o, f32x4.mul(v128.load(p + o), invV))
      v128.store(g + o, dots4(doi, vh + <usize>j * kvRow, kvRow, D4))
    }
  }
  for (; j < count; j++) {
    const o = <usize>j << 2
    store<f32>(p + o, load<f32>(p + o) * inv)
    store<f32>(g + o, dot(doi, vh + <usize>j * kvRow, headDim))
  }
  let D: f64 = 0
  for (j = 0; j < count; j++) D += <f64>load<f32>(p + (<usize>j << 2)) * <f64>load<f32>(g + (<usize>j << 2))
  const Dv = f32x4.splat(<f32>D), D32 = <f32>D
  for (j = 0; j < count4; j += 4) {
    const o = <usize>j << 2
    v128.store(g + o, f32x4.mul(f32x4.mul(v128.load(p + o), f32x4.sub(v128.load(g + o), Dv)), scaleV))
  }
  for (; j < count; j++) {
    const o = <usize>j << 2
    store<f32>(g + o, (load<f32>(p + o) * (load<f32>(g + o) - D32)) * scale)
  }
}

/** Key j's dk_j and dv_j (at dkj, dvj) take the terms of queries [iStart, i1) of the block starting at i0. */
// @ts-ignore: decorator
@inline function keyRange(
  j: i32, iStart: i32, i1: i32, i0: i32, P: usize, G: usize, qh: usize, doh: usize, qRow: usize,
  dkj: usize, dvj: usize, rowBytes: usize, headDim: i32,
): void {
  const jo = <usize>j << 2
  const D4 = headDim & ~3
  let d = 0
  for (; d < D4; d += 4) {
    const o = <usize>d << 2
    let ak = v128.load(dkj + o), av = v128.load(dvj + o)
    for (let i = iStart; i < i1; i++) {
      const r = <usize>(i - i0) * rowBytes + jo
      ak = f32x4.add(ak, f32x4.mul(f32x4.splat(load<f32>(G + r)), v128.load(qh + <usize>i * qRow + o)))
      av = f32x4.add(av, f32x4.mul(f32x4.splat(load<f32>(P + r)), v128.load(doh + <usize>i * qRow + o)))
    }
    v128.store(dkj + o, ak)
    v128.store(dvj + o, av)
  }
  scalarTail(jo, D4, iStart, i1, i0, P, G, qh, doh, qRow, dkj, dvj, rowBytes, headDim)
}

/** Lanes d ∈ [d0, headDim) of key j (byte offset jo in a scratch row), one at a time. */
// @ts-ignore: decorator
@inline function scalarTail(
  jo: usize, d0: i32, iStart: i32, i1: i32, i0: i32, P: usize, G: usize, qh: usize, doh: usize, qRow: usize,
  dkj: usize, dvj: usize, rowBytes: usize, headDim: i32,
): void {
  for (let d = d0; d < headDim; d++) {
    const o = <usize>d << 2
    let ak = load<f32>(dkj + o), av = load<f32>(dvj + o)
    for (let i = iStart; i < i1; i++) {
      const r = <usize>(i - i0) * rowBytes + jo
      ak += load<f32>(G + r) * load<f32>(qh + <usize>i * qRow + o)
      av += load<f32>(P + r) * load<f32>(doh + <usize>i * qRow + o)
    }
    store<f32>(dkj + o, ak)
    store<f32>(dvj + o, av)
  }
}

/** Keys j and j + 1, both ≤ i0 (so both take every query of the block): four add chains at a time. */
// @ts-ignore: decorator
@inline function keyPair(
  j: i32, i0: i32, i1: i32, P: usize, G: usize, qh: usize, doh: usize, qRow: usize,
  dkj: usize, dvj: usize, kvRow: usize, rowBytes: usize, headDim: i32,
): void {
  const jo = <usize>j << 2
  const D4 = headDim & ~3
  for (let d = 0; d < D4; d += 4) {
    const o = <usize>d << 2
    let ak0 = v128.load(dkj + o), av0 = v128.load(dvj + o)
    let ak1 = v128.load(dkj + kvRow + o), av1 = v128.load(dvj + kvRow + o)
    for (let i = i0; i < i1; i++) {
      const r = <usize>(i - i0) * rowBytes + jo
      const qi = v128.load(qh + <usize>i * qRow + o), di = v128.load(doh + <usize>i * qRow + o)
      ak0 = f32x4.add(ak0, f32x4.mul(f32x4.splat(load<f32>(G + r)), qi))
      av0 = f32x4.add(av0, f32x4.mul(f32x4.splat(load<f32>(P + r)), di))
      ak1 = f32x4.add(ak1, f32x4.mul(f32x4.splat(load<f32>(G + r, 4)), qi))
      av1 = f32x4.add(av1, f32x4.mul(f32x4.splat(load<f32>(P + r, 4)), di))
    }
    v128.store(dkj + o, ak0)
    v128.store(dvj + o, av0)
    v128.store(dkj + kvRow + o, ak1)
    v128.store(dvj + kvRow + o, av1)
  }
  scalarTail(jo, D4, i0, i1, i0, P, G, qh, doh, qRow, dkj, dvj, rowBytes, headDim)
  scalarTail(jo + 4, D4, i0, i1, i0, P, G, qh, doh, qRow, dkj + kvRow, dvj + kvRow, rowBytes, headDim)
}

export function attention_causal_backward(
  q: usize, k: usize, v: usize, dout: usize, dq: usize, dk: usize, dv: usize, scratch: usize,
  T: i32, nHeads: i32, nKV: i32, headDim: i32, g0: i32, g1: i32,
): void {
  if (nKV <= 0 || nHeads <= 0 || nHeads % nKV != 0 || headDim <= 0 || T <= 0) return
  if (g0 < 0) g0 = 0
  if (g1 > nKV) g1 = nKV
  const group = nHeads / nKV
  const scale = <f32>(1.0 / Math.sqrt(<f64>headDim))
  // LOG2E is f64, so the quotient is taken in f64 and rounded once (a bare literal here would be read as f32).
  const scale2 = <f32>(LOG2E / Math.sqrt(<f64>headDim))
  const qRow = (<usize>nHeads * <usize>headDim) << 2
  const kvRow = (<usize>nKV * <usize>headDim) << 2
  const headBytes = <usize>headDim << 2
  const rowBytes = <usize>T << 2
  const block = min(T, QBLOCK)
  const P = scratch, G = scratch + <usize>block * rowBytes
  const D4 = headDim & ~3
  for (let h = g0 * group; h < g1 * group; h++) {
    const kvOff = <usize>(h / group) * headBytes
    const kh = k + kvOff, vh = v + kvOff, dkh = dk + kvOff, dvh = dv + kvOff
    const qh = q + <usize>h * headBytes, doh = dout + <usize>h * headBytes, dqh = dq + <usize>h * headBytes
    for (let i0 = 0; i0 < T; i0 += block) {
      const i1 = min(T, i0 + block)
      for (let i = i0; i < i1; i++) {
        const pr = P + <usize>(i - i0) * rowBytes, gr = G + <usize>(i - i0) * rowBytes
        rowGradients(qh + <usize>i * qRow, doh + <usize>i * qRow, kh, vh, kvRow, i, headDim, scale, scale2, pr, gr)
        // dq_i = Σ_j g_j · k_j in registers: eight output lanes at a time (two independent add chains), then four.
        const dqi = dqh + <usize>i * qRow
        const D8 = headDim & ~7
        let d = 0
        for (; d < D8; d += 8) {
          let acc0 = f32x4.splat(0), acc1 = f32x4.splat(0)
          const kd = kh + (<usize>d << 2)
          for (let j = 0; j <= i; j++) {
            const gj = f32x4.splat(load<f32>(gr + (<usize>j << 2)))
            const kj = kd + <usize>j * kvRow
            acc0 = f32x4.add(acc0, f32x4.mul(gj, v128.load(kj)))
            acc1 = f32x4.add(acc1, f32x4.mul(gj, v128.load(kj, 16)))
          }
          v128.store(dqi + (<usize>d << 2), acc0)
          v128.store(dqi + (<usize>d << 2), acc1, 16)
        }
        for (; d < D4; d += 4) {
          let acc = f32x4.splat(0)
          const kd = kh + (<usize>d << 2)
          for (let j = 0; j <= i; j++) acc = f32x4.add(acc, f32x4.mul(f32x4.splat(load<f32>(gr + (<usize>j << 2))), v128.load(kd + <usize>j * kvRow)))
          v128.store(dqi + (<usize>d << 2), acc)
        }
        for (; d < headDim; d++) {
          let acc: f32 = 0
          const kd = kh + (<usize>d << 2)
          for (let j = 0; j <= i; j++) acc += load<f32>(gr + (<usize>j << 2)) * load<f32>(kd + <usize>j * kvRow)
          store<f32>(dqi + (<usize>d << 2), acc)
        }
      }
      // dk_j += Σ_i g_ij · q_i and dv_j += Σ_i p_ij · dout_i over this block's queries i ≥ j, i ascending.
      // Two keys at a time (four independent add chains) once both take every remaining query.
      let j = 0
      for (; j < i1; ) {
        if (j + 1 < i1 && j + 1 <= i0) {
          keyPair(j, i0, i1, P, G, qh, doh, qRow, dkh + <usize>j * kvRow, dvh + <usize>j * kvRow, kvRow, rowBytes, headDim)
          j += 2
        } else {
          keyRange(j, max(i0, j), i1, i0, P, G, qh, doh, qRow, dkh + <usize>j * kvRow, dvh + <usize>j * kvRow, rowBytes, headDim)
          j++
        }
      }
    }
  }
}
