// The training loss over the LM head's logits and its gradient: next-token cross-entropy and Hinton's
// temperature KL(teacher_T ‖ student_T), fused so each logit row is read a few times and written once.
// Twin: kernels/reference/backward-loss.ts (bit-exact).
//
// For row t with student logits z [V], teacher logits zt [V] and target y (all f32):
//   m = max z, mt = max zt (plain `>` scans from v = 0); invT = f32(1 / temperature)
//   a_v = f32(z_v − m);  e_v = expf32(a_v);  es_v = expf32(f32(a_v · invT))
//   b_v = f32(f32(zt_v − mt) · invT);  et_v = expf32(b_v)
//   S1 = Σ e_v, S2 = Σ es_v, S3 = Σ et_v, A = Σ f64(et_v) · (f64(b_v) − f64(f32(a_v · invT)))
//        (all f64, v = 0, 1, 2, … in order)
//   ce[t] = log64(S1) − (f64(z_y) − f64(m))
//   kl[t] = A / S3 + log64(S2) − log64(S3)      = Σ q_t · (log q_t − log q_s), since Σ q_t = 1
//   with cCE = f32((1 − α) · scale), cKL = f32(α · temperature · scale), inv_k = f32(1 / S_k):
//   dz_v = f32(f32(cCE · f32(e_v · inv1)) + f32(cKL · f32(f32(es_v · inv2) − f32(et_v · inv3))))
//   dz_y = f32(dz_y − cCE)
// The caller's loss is α·T²·mean(kl) + (1 − α)·mean(ce); scale is 1 / (number of predictions), so dz is
// that loss's gradient (the KL term's T² times its 1/T from z/T gives the α·T factor).
// α = 0 never reads the teacher (teacher may be any address) and gives kl = 0.
// A row with y < 0 is not a prediction: ce = kl = 0 and dz = 0. y ≥ V: ce = kl = NaN, dz = 0.
// WRITES stats f64 [T, 2] = (ce, kl) per row and dlogits f32 [T, V]; dlogits must not alias logits.

import { expf32, expf32x4, log64 } from './softmax'

// @ts-ignore: decorator
@inline function rowMax(row: usize, V: i32): f32 {
  let m = load<f32>(row)
  for (let v = 1; v < V; v++) {
    const l = load<f32>(row + (<usize>v << 2))
    if (l > m) m = l
  }
  return m
}

export function distill_loss(
  logits: usize, teacher: usize, targets: usize, dlogits: usize, stats: usize,
  T: i32, V: i32, temperature: f32, alpha: f32, scale: f32,
): void {
  if (V <= 0) return
  const V4 = V & ~3
  const useTeacher = alpha != 0
  const invT: f32 = <f32>(1.0 / <f64>temperature)
  const cCE = <f32>((1.0 - <f64>alpha) * <f64>scale)
  const cKL = <f32>(<f64>alpha * <f64>temperature * <f64>scale)
  const invTv = f32x4.splat(invT)
  for (let t = 0; t < T; t++) {
    const rowBytes = (<usize>t * <usize>V) << 2
    const z = logits + rowBytes, zt = teacher + rowBytes, dz = dlogits + rowBytes
    const out = stats + (<usize>t << 4)
    const y = load<i32>(targets + (<usize>t << 2))
    if (y < 0 || y >= V) {
      memory.fill(dz, 0, <usize>V << 2)
      const fill: f64 = y < 0 ? 0 : NaN
      store<f64>(out, fill)
      store<f64>(out, fill, 8)
      continue
    }
    const m = rowMax(z, V)
    const mt: f32 = useTeacher ? rowMax(zt, V) : 0
    const mv = f32x4.splat(m), mtv = f32x4.splat(mt)
    let S1: f64 = 0, S2: f64 = 0, S3: f64 = 0, A: f64 = 0
    let v = 0
    for (; v < V4; v += 4) {
      const o = <usize>v << 2
      const a = f32x4.sub(v128.load(z + o), mv)
      const sa = f32x4.mul(a, invTv)
      const e = expf32x4(a), es = expf32x4(sa)
      S1 += <f64>f32x4.extract_lane(e, 0); S1 += <f64>f32x4.extract_lane(e, 1)
      S1 += <f64>f32x4.extract_lane(e, 2); S1 += <f64>f32x4.extract_lane(e, 3)
      S2 += <f64>f32x4.extract_lane(es, 0); S2 += <f64>f32x4.extract_lane(es, 1)
      S2 += <f64>f32x4.extract_lane(es, 2); S2 += <f64>f32x4.extract_lane(es, 3)
      if (useTeacher) {
        const b = f32x4.mul(f32x4.sub(v128.load(zt + o), mtv), invTv)
        const et = expf32x4(b)
        // Lane by lane, in v order (extract_lane needs a constant lane index).
        let etl = <f64>f32x4.extract_lane(et, 0)
        S3 += etl; A += etl * (<f64>f32x4.extract_lane(b, 0) - <f64>f32x4.extract_lane(sa, 0))
        etl = <f64>f32x4.extract_lane(et, 1)
        S3 += etl; A += etl * (<f64>f32x4.extract_lane(b, 1) - <f64>f32x4.extract_lane(sa, 1))
        etl = <f64>f32x4.extract_lane(et, 2)
        S3 += etl; A += etl * (<f64>f32x4.extract_lane(b, 2) - <f64>f32x4.extract_lane(sa, 2))
        etl = <f64>f32x4.extract_lane(et, 3)
        S3 += etl; A += etl * (<f64>f32x4.extract_lane(b, 3) - <f64>f32x4.extract_lane(sa, 3))
      }
    }
    for (; v < V; v++) {
      const o = <usize>v << 2
      const a = load<f32>(z + o) - m
      const sa = a * invT
      S1 += <f64>expf32(a)
      S2 += <f64>expf32(sa)
      if (useTeacher) {
        const b = (load<f32>(zt + o) - mt) * invT
        const et = <f64>expf32(b)
        S3 += et
        A += et * (<f64>b - <f64>sa)
      }
    }
    const logS2 = log64(S2)
    store<f64>(out, log64(S1) - (<f64>load<f32>(z + (<usize>y << 2)) - <f64>m))
    store<f64>(out, useTeacher ? A / S3 + logS2 - log64(S3) : 0, 8)
    const inv1 = <f32>(1.0 / S1), inv2 = <f32>(1.0 / S2), inv3: f32 = useTeacher ? <f32>(1.0 / S3) : 0
    const inv1v = f32x4.splat(inv1), inv2v = f32x4.splat(inv2), inv3v = f32x4.splat(inv3)
    const cCEv = f32x4.splat(cCE), cKLv = f32x4.splat(cKL)
    v = 0
    for (; v < V4; v += 4) {
      const o = <usize>v << 2
      const a = f32x4.sub(v128.load(z + o), mv)
      const p = f32x4.mul(expf32x4(a), inv1v)
      const qs = f32x4.mul(expf32x4(f32x4.mul(a, invTv)), inv2v)
      const qt = useTeacher
        ? f32x4.mul(expf32x4(f32x4.mul(f32x4.sub(v128.load(zt + o), mtv), invTv)), inv3v)
        : f32x4.splat(0)
      v128.store(dz + o, f32x4.add(f32x4.mul(cCEv, p), f32x4.mul(cKLv, f32x4.sub(qs, qt))))
    }
    for (; v < V; v++) {
      const o = <usize>v << 2
      const a = load<f32>(z + o) - m
      const p = expf32(a) * inv1
      const qs = expf32(a * invT) * inv2
      const qt: f32 = useTeacher ? expf32((load<f32>(zt + o) - mt) * invT) * inv3 : 0
      store<f32>(dz + o, cCE * p + cKL * (qs - qt))
    }
    const dy = dz + (<usize>y << 2)
    store<f32>(dy, load<f32>(dy) - cCE)
  }
}
