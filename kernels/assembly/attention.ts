// Causal multi-head attention with grouped KV heads, for heads [h0, h1) so workers can split the
// heads of one layer. Twin: kernels/reference/attention.ts (bit-exact).
//
// q and out are [T, nHeads·headDim], k and v are [T, nKV·headDim]; query head h reads KV head
// h / (nHeads / nKV). scratch holds attentionScratch(T) = 4·T f32 of this call's own (declared in
// kernels/reference/attention.ts). For each head h and query i, in this order:
//   scale = f32(log2(e) / sqrt(headDim))   (computed in f64, rounded once: scores in log2 units)
//   s_j = f32(dot(q_i, k_j) · scale) for j = 0…i, dot in matmul's order: four f32 lane sums over
//         d < D4 = headDim & ~3, combined (l0 + l1) + (l2 + l3), then the tail d one by one
//   m = max_j s_j (plain `>` scan from j = 0)
//   p_j = softmaxExp2f32(f32(s_j − m)) (softmax.ts: 2^x, 0 below −92);  S = Σ_j p_j in f64 from j = 0;  inv = f32(1 / S)
//   out_i[d] = f32(acc_d · inv), acc_d = Σ_j f32(p_j · v_j[d]) accumulated in f32 from j = 0
// (normalising after the weighted sum instead of before saves i multiplies per output; it moves
// results by an f32 rounding, not more). T = 1 gives p_0 = 1 exactly, so out = v.
//
// Layout of the work (it never changes the order above). The max, S and each acc_d are chains of i
// dependent operations; with a small headDim (8 on stories260K) each link is too little work to
// hide the latency. So queries go in groups of four consecutive ones, i0…i0+3, one f32x4 lane each:
// scratch row j holds the four queries' s_j (then p_j), and each lane runs its own chains in the
// spec's order while the four interleave. Keys j ≤ i0 belong to all four queries; a key
// i0 < j ≤ i0+3 only to the queries i ≥ j, and a lane masked off keeps its max, S and acc as they
// were (bitselect or a skipped add, never a multiply by 0, which would turn 0·∞ into NaN). In the
// last group the spare lanes repeat its last query, so every lane reads real rows; they are never
// stored. p_j is stored over s_j, then the weighted sum: for headDim 8 the four queries' acc side by
// side (eight f32x4 chains; fusing it with the exp pass ran slower, out of registers), for other head
// dims one query at a time over 32-lane blocks (eight chains each already; 4 × 8 accumulators would
// not fit in registers), then 8-lane, 4-lane and single-lane blocks. headDim 8 also takes its scores
// from the group's q transposed once, not a transpose per key.

import { LOG2E, softmaxExp2f32x4 } from './softmax'
import { transposedSums } from './lane-sums'
import { madd } from './madd'

// @ts-ignore: decorator
@inline function dot(a: usize, b: usize, D: i32): f32 {
  const D4 = D & ~3
  let acc = f32x4.splat(0)
  for (let d = 0; d < D4; d += 4) {
    const o = <usize>d << 2
    acc = madd(acc, v128.load(a + o), v128.load(b + o))
  }
  let s: f32 = (f32x4.extract_lane(acc, 0) + f32x4.extract_lane(acc, 1)) +
    (f32x4.extract_lane(acc, 2) + f32x4.extract_lane(acc, 3))
  for (let d = D4; d < D; d++) s += load<f32>(a + (<usize>d << 2)) * load<f32>(b + (<usize>d << 2))
  return s
}

/**
 * Lane r = f32(dot(k, q_r) · scale) for the query rows q0…q3, any headDim. With headDim = D4 (a
 * multiple of 4) a 4×4 transpose turns the four lane-sum vectors into lane vectors L0..L3, so
 * (L0 + L1) + (L2 + L3) is each row's (l0 + l1) + (l2 + l3): dot()'s order (and k·q = q·k exactly).
 */
// @ts-ignore: decorator
@inline function scores4(k: usize, q0: usize, q1: usize, q2: usize, q3: usize, D: i32, scale: f32): v128 {
  const D4 = D & ~3
  if (D4 != D) {
    let s = f32x4.splat(dot(q0, k, D) * scale)
    s = f32x4.replace_lane(s, 1, dot(q1, k, D) * scale)
    s = f32x4.replace_lane(s, 2, dot(q2, k, D) * scale)
    return f32x4.replace_lane(s, 3, dot(q3, k, D) * scale)
  }
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0)
  for (let d = 0; d < D4; d += 4) {
    const o = <usize>d << 2
    const kv = v128.load(k + o)
    a0 = madd(a0, kv, v128.load(q0 + o))
    a1 = madd(a1, kv, v128.load(q1 + o))
    a2 = madd(a2, kv, v128.load(q2 + o))
    a3 = madd(a3, kv, v128.load(q3 + o))
  }
  return f32x4.mul(transposedSums(a0, a1, a2, a3), f32x4.splat(scale))
}

/** Lane r = element c (counted from byte offset o) of row q_r: one column of the four rows q0…q3. */
// @ts-ignore: decorator
@inline function column(q0: usize, q1: usize, q2: usize, q3: usize, o: usize, c: u8): v128 {
  let t = v128.load32_splat(q0 + o + (<usize>c << 2))
  t = v128.load32_lane(q1 + o + (<usize>c << 2), t, 1)
  t = v128.load32_lane(q2 + o + (<usize>c << 2), t, 2)
  return v128.load32_lane(q3 + o + (<usize>c << 2), t, 3)
}

/** Whether lane r's query (its index in `last`) takes key j: a lane mask. */
// @ts-ignore: decorator
@inline function takes(last: v128, j: i32): v128 {
  return i32x4.ge_s(last, i32x4.splat(j))
}

/**
 * The four queries' s_j for j = 0…i3 into scratch row j, and their running max m (returned). The
 * transposed q is loaded once, so a key costs broadcasts, not a transpose: lane sum c =
 * q[c]·k[c] + q[c + 4]·k[c + 4]. dot()'s order starts the sum at 0, and 0 + a = a but for a = −0: the
 * sum's zero may have the other sign, so s_j's may too, and nothing downstream tells (s − m and 2^x are
 * the same for either zero), so the outputs are dot()'s bits without that add.
 */
// @ts-ignore: decorator
@inline function scoresHead8(
  kh: usize, kvRow: usize, q0: usize, q1: usize, q2: usize, q3: usize,
  i0: i32, i3: i32, last: v128, scale: f32, scratch: usize,
): v128 {
  const scaleV = f32x4.splat(scale)
  const t0 = column(q0, q1, q2, q3, 0, 0), t1 = column(q0, q1, q2, q3, 0, 1)
  const t2 = column(q0, q1, q2, q3, 0, 2), t3 = column(q0, q1, q2, q3, 0, 3)
  const t4 = column(q0, q1, q2, q3, 16, 0), t5 = column(q0, q1, q2, q3, 16, 1)
  const t6 = column(q0, q1, q2, q3, 16, 2), t7 = column(q0, q1, q2, q3, 16, 3)
  let m = f32x4.splat(-Infinity)
  for (let j = 0; j <= i3; j++) {
    const kj = kh + <usize>j * kvRow
    const l0 = madd(f32x4.mul(t0, v128.load32_splat(kj)), t4, v128.load32_splat(kj, 16))
    const l1 = madd(f32x4.mul(t1, v128.load32_splat(kj, 4)), t5, v128.load32_splat(kj, 20))
    const l2 = madd(f32x4.mul(t2, v128.load32_splat(kj, 8)), t6, v128.load32_splat(kj, 24))
    const l3 = madd(f32x4.mul(t3, v128.load32_splat(kj, 12)), t7, v128.load32_splat(kj, 28))
    const s = f32x4.mul(f32x4.add(f32x4.add(l0, l1), f32x4.add(l2, l3)), scaleV)
    v128.store(scratch + (<usize>j << 4), s)
    m = runningMax(m, s, j, i0, last)
  }
  return m
}

/**
 * The running max's step for key j: `s > m ? s : m` in every lane whose query takes j (pmax is that
 * select, in one instruction); keys past i0 leave the other lanes as they were.
 */
// @ts-ignore: decorator
@inline function runningMax(m: v128, s: v128, j: i32, i0: i32, last: v128): v128 {
  if (j <= i0) return f32x4.pmax(m, s)
  return v128.bitselect(s, m, v128.and(f32x4.gt(s, m), takes(last, j)))
}

/** scoresHead8 for any other headDim, through scores4. */
// @ts-ignore: decorator
@inline function scoresAnyDim(
  kh: usize, kvRow: usize, q0: usize, q1: usize, q2: usize, q3: usize,
  i0: i32, i3: i32, last: v128, headDim: i32, scale: f32, scratch: usize,
): v128 {
  let m = f32x4.splat(-Infinity)
  for (let j = 0; j <= i3; j++) {
    const s = scores4(kh + <usize>j * kvRow, q0, q1, q2, q3, headDim, scale)
    v128.store(scratch + (<usize>j << 4), s)
    m = runningMax(m, s, j, i0, last)
  }
  return m
}

/** f32(1 / S) per lane from S of lanes 0, 1 (s01) and 2, 3 (s23). */
// @ts-ignore: decorator
@inline function inverses(s01: v128, s23: v128): v128 {
  const one = f64x2.splat(1)
  const lo = f32x4.demote_f64x2_zero(f64x2.div(one, s01)), hi = f32x4.demote_f64x2_zero(f64x2.div(one, s23))
  return v128.shuffle<f32>(lo, hi, 0, 1, 4, 5)
}

/**
 * headDim 8: acc = Σ_j p_j·v_j for the group's four queries side by side (p_j from scratch row j), then
 * out = acc · inv for its nq queries (their rows from od, qRow bytes apart).
 */
// @ts-ignore: decorator
@inline function weightedHead8(
  scratch: usize, vh: usize, kvRow: usize, inv: v128, i0: i32, i1: i32, i2: i32, i3: i32,
  nq: i32, od: usize, qRow: usize,
): void {
  const zero = f32x4.splat(0)
  // a_r, b_r: query r's acc over d 0–3 and 4–7
  let a0 = zero, b0 = zero, a1 = zero, b1 = zero, a2 = zero, b2 = zero, a3 = zero, b3 = zero
  let j = 0
  for (; j <= i0; j++) {
    const p = v128.load(scratch + (<usize>j << 4))
    const vj = vh + <usize>j * kvRow
    const lo = v128.load(vj), hi = v128.load(vj, 16)
    const p0 = v128.shuffle<f32>(p, p, 0, 0, 0, 0), p1 = v128.shuffle<f32>(p, p, 1, 1, 1, 1)
    const p2 = v128.shuffle<f32>(p, p, 2, 2, 2, 2), p3 = v128.shuffle<f32>(p, p, 3, 3, 3, 3)
    a0 = madd(a0, p0, lo)
    b0 = madd(b0, p0, hi)
    a1 = madd(a1, p1, lo)
    b1 = madd(b1, p1, hi)
    a2 = madd(a2, p2, lo)
    b2 = madd(b2, p2, hi)
    a3 = madd(a3, p3, lo)
    b3 = madd(b3, p3, hi)
  }
  // Keys past i0: query 0 takes none; 1, 2 up to i1, i2; lane 3 (the last query, or a copy) takes all.
  for (; j <= i3; j++) {
    const p = v128.load(scratch + (<usize>j << 4))
    const vj = vh + <usize>j * kvRow
    const lo = v128.load(vj), hi = v128.load(vj, 16)
    if (j <= i1) {
      const p1 = v128.shuffle<f32>(p, p, 1, 1, 1, 1)
      a1 = madd(a1, p1, lo)
      b1 = madd(b1, p1, hi)
    }
    if (j <= i2) {
      const p2 = v128.shuffle<f32>(p, p, 2, 2, 2, 2)
      a2 = madd(a2, p2, lo)
      b2 = madd(b2, p2, hi)
    }
    const p3 = v128.shuffle<f32>(p, p, 3, 3, 3, 3)
    a3 = madd(a3, p3, lo)
    b3 = madd(b3, p3, hi)
  }
  let invV = v128.shuffle<f32>(inv, inv, 0, 0, 0, 0)
  v128.store(od, f32x4.mul(a0, invV))
  v128.store(od, f32x4.mul(b0, invV), 16)
  if (nq > 1) {
    invV = v128.shuffle<f32>(inv, inv, 1, 1, 1, 1)
    v128.store(od + qRow, f32x4.mul(a1, invV))
    v128.store(od + qRow, f32x4.mul(b1, invV), 16)
  }
  if (nq > 2) {
    invV = v128.shuffle<f32>(inv, inv, 2, 2, 2, 2)
    v128.store(od + 2 * qRow, f32x4.mul(a2, invV))
    v128.store(od + 2 * qRow, f32x4.mul(b2, invV), 16)
  }
  if (nq > 3) {
    invV = v128.shuffle<f32>(inv, inv, 3, 3, 3, 3)
    v128.store(od + 3 * qRow, f32x4.mul(a3, invV))
    v128.store(od + 3 * qRow, f32x4.mul(b3, invV), 16)
  }
}

/** p_j = softmaxExp2f32(s_j − m) over scratch rows 0…i3 in place; returns the four lanes' f32(1 / S). */
// @ts-ignore: decorator
@inline function softmaxInPlace(scratch: usize, m: v128, i0: i32, i3: i32, last: v128): v128 {
  let s01 = f64x2.splat(0), s23 = f64x2.splat(0)
  let j = 0
  for (; j <= i0; j++) {
    const sp = scratch + (<usize>j << 4)
    const p = softmaxExp2f32x4(f32x4.sub(v128.load(sp), m))
    v128.store(sp, p)
    s01 = f64x2.add(s01, f64x2.promote_low_f32x4(p))
    s23 = f64x2.add(s23, f64x2.promote_low_f32x4(v128.shuffle<f32>(p, p, 2, 3, 2, 3)))
  }
  for (; j <= i3; j++) {
    const sp = scratch + (<usize>j << 4)
    const p = softmaxExp2f32x4(f32x4.sub(v128.load(sp), m))
    v128.store(sp, p)
    const live = takes(last, j)
    s01 = v128.bitselect(f64x2.add(s01, f64x2.promote_low_f32x4(p)), s01, i64x2.extend_low_i32x4_s(live))
    const p23 = f64x2.promote_low_f32x4(v128.shuffle<f32>(p, p, 2, 3, 2, 3))
    s23 = v128.bitselect(f64x2.add(s23, p23), s23, i64x2.extend_high_i32x4_s(live))
  }
  return inverses(s01, s23)
}

/**
 * out_i = acc · inv for one query i whose p_j sit at p + 16·j (its lane of scratch): 32-lane blocks
 * (eight f32x4 chains), then 8-lane (two), 4-lane and single lanes; every lane sums j = 0…i in order.
 */
function weightedOneQuery(p: usize, vh: usize, kvRow: usize, i: i32, inv: f32, oi: usize, D: i32): void {
  const D32 = D & ~31, D8 = D & ~7, D4 = D & ~3
  const invV = f32x4.splat(inv)
  let d = 0
  for (; d < D32; d += 32) {
    const vd = vh + (<usize>d << 2), od = oi + (<usize>d << 2)
    let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0)
    let a4 = f32x4.splat(0), a5 = f32x4.splat(0), a6 = f32x4.splat(0), a7 = f32x4.splat(0)
    for (let j = 0; j <= i; j++) {
      const pj = v128.load32_splat(p + (<usize>j << 4))
      const vj = vd + <usize>j * kvRow
      a0 = madd(a0, pj, v128.load(vj))
      a1 = madd(a1, pj, v128.load(vj, 16))
      a2 = madd(a2, pj, v128.load(vj, 32))
      a3 = madd(a3, pj, v128.load(vj, 48))
      a4 = madd(a4, pj, v128.load(vj, 64))
      a5 = madd(a5, pj, v128.load(vj, 80))
      a6 = madd(a6, pj, v128.load(vj, 96))
      a7 = madd(a7, pj, v128.load(vj, 112))
    }
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
    const vd = vh + (<usize>d << 2), od = oi + (<usize>d << 2)
    let a0 = f32x4.splat(0), a1 = f32x4.splat(0)
    for (let j = 0; j <= i; j++) {
      const pj = v128.load32_splat(p + (<usize>j << 4))
      const vj = vd + <usize>j * kvRow
      a0 = madd(a0, pj, v128.load(vj))
      a1 = madd(a1, pj, v128.load(vj, 16))
    }
    v128.store(od, f32x4.mul(a0, invV))
    v128.store(od, f32x4.mul(a1, invV), 16)
  }
  for (; d < D4; d += 4) {
    const vd = vh + (<usize>d << 2)
    let a = f32x4.splat(0)
    for (let j = 0; j <= i; j++) {
      a = madd(a, v128.load32_splat(p + (<usize>j << 4)), v128.load(vd + <usize>j * kvRow))
    }
    v128.store(oi + (<usize>d << 2), f32x4.mul(a, invV))
  }
  for (; d < D; d++) {
    const vd = vh + (<usize>d << 2)
    let a: f32 = 0
    for (let j = 0; j <= i; j++) a += load<f32>(p + (<usize>j << 4)) * load<f32>(vd + <usize>j * kvRow)
    store<f32>(oi + (<usize>d << 2), a * inv)
  }
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
  const scale = <f32>(LOG2E / Math.sqrt(<f64>headDim))
  const qRow = (<usize>nHeads * <usize>headDim) << 2
  const kvRow = (<usize>nKV * <usize>headDim) << 2
  const headBytes = <usize>headDim << 2
  for (let h = h0; h < h1; h++) {
    const kvOff = <usize>(h / group) * headBytes
    const kh = k + kvOff, vh = v + kvOff
    const qh = q + <usize>h * headBytes, oh = out + <usize>h * headBytes
    for (let i0 = 0; i0 < T; i0 += 4) {
      // The group's queries (lane r: query i_r); spare lanes of the last group repeat its last query.
      const i3 = min(i0 + 3, T - 1), i1 = min(i0 + 1, i3), i2 = min(i0 + 2, i3)
      const nq = i3 - i0 + 1
      const q0 = qh + <usize>i0 * qRow, q1 = qh + <usize>i1 * qRow
      const q2 = qh + <usize>i2 * qRow, q3 = qh + <usize>i3 * qRow
      let last = i32x4.splat(i0)
      last = i32x4.replace_lane(last, 1, i1)
      last = i32x4.replace_lane(last, 2, i2)
      last = i32x4.replace_lane(last, 3, i3)
      if (headDim == 8) {
        const m = scoresHead8(kh, kvRow, q0, q1, q2, q3, i0, i3, last, scale, scratch)
        const inv = softmaxInPlace(scratch, m, i0, i3, last)
        weightedHead8(scratch, vh, kvRow, inv, i0, i1, i2, i3, nq, oh + <usize>i0 * qRow, qRow)
        continue
      }
      const m = scoresAnyDim(kh, kvRow, q0, q1, q2, q3, i0, i3, last, headDim, scale, scratch)
      const inv = softmaxInPlace(scratch, m, i0, i3, last)
      const o0 = oh + <usize>i0 * qRow
      weightedOneQuery(scratch, vh, kvRow, i0, f32x4.extract_lane(inv, 0), o0, headDim)
      if (nq > 1) weightedOneQuery(scratch + 4, vh, kvRow, i1, f32x4.extract_lane(inv, 1), o0 + qRow, headDim)
      if (nq > 2) weightedOneQuery(scratch + 8, vh, kvRow, i2, f32x4.extract_lane(inv, 2), o0 + 2 * qRow, headDim)
      if (nq > 3) weightedOneQuery(scratch + 12, vh, kvRow, i3, f32x4.extract_lane(inv, 3), o0 + 3 * qRow, headDim)
    }
  }
}
