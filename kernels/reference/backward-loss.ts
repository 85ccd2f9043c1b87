// Plain-TS twin of kernels/assembly/backward-loss.ts, bit-exact. Per row t (target y):
//   m = max z, mt = max zt (`>` scans); invT = f32(1/temperature); a = f32(z − m); sa = f32(a · invT);
//   e = expF32(a), es = expF32(sa), b = f32(f32(zt − mt) · invT), et = expF32(b);
//   S1 = Σ e, S2 = Σ es, S3 = Σ et, A = Σ et · (b − sa)   (f64, v in order)
//   ce = log64(S1) − (z_y − m);  kl = A/S3 + log64(S2) − log64(S3)
//   cCE = f32((1 − α)·scale), cKL = f32(α·temperature·scale), inv_k = f32(1/S_k)
//   dz = f32(f32(cCE · f32(e·inv1)) + f32(cKL · f32(f32(es·inv2) − f32(et·inv3)))); dz_y = f32(dz_y − cCE)
// α = 0 reads no teacher and gives kl = 0. y < 0: ce = kl = 0, dz = 0. y ≥ V: ce = kl = NaN, dz = 0.

import { kernelArgError, requireLength, requireSizes } from './matmul'
import { expF32, log64 } from './softmax'

const f = Math.fround

function rowMax(a: Float32Array, off: number, V: number): number {
  let m = a[off]
  for (let v = 1; v < V; v++) if (a[off + v] > m) m = a[off + v]
  return m
}

/**
 * WRITES stats [T, 2] = (ce, kl) and dlogits [T, V] for student logits [T, V] and, when alpha ≠ 0,
 * teacher logits [T, V]. Loss = α·T²·mean(kl) + (1 − α)·mean(ce); scale = 1 / number of predictions.
 */
export function distillLoss(
  logits: Float32Array,
  teacher: Float32Array | null,
  targets: Int32Array,
  dlogits: Float32Array,
  stats: Float64Array,
  T: number,
  V: number,
  temperature: number,
  alpha: number,
  scale: number,
): void {
  const name = 'distill_loss'
  requireSizes(name, { T, V })
  if (V === 0 && T > 0) throw kernelArgError(name, 'V = 0: no vocabulary to normalise over')
  requireLength(name, 'logits', logits, T * V)
  requireLength(name, 'targets', targets, T)
  requireLength(name, 'dlogits', dlogits, T * V)
  requireLength(name, 'stats', stats, 2 * T)
  const temp = f(temperature),
    a32 = f(alpha),
    s32 = f(scale)
  const useTeacher = a32 !== 0
  if (useTeacher) {
    if (!teacher) throw kernelArgError(name, 'alpha ≠ 0 needs teacher logits')
    requireLength(name, 'teacher', teacher, T * V)
  }
  const invT = f(1.0 / temp)
  const cCE = f((1.0 - a32) * s32)
  const cKL = f(a32 * temp * s32)
  for (let t = 0; t < T; t++) {
    const off = t * V
    const y = targets[t]
    if (y < 0 || y >= V) {
      dlogits.fill(0, off, off + V)
      stats[2 * t] = stats[2 * t + 1] = y < 0 ? 0 : NaN
      continue
    }
    const m = rowMax(logits, off, V)
    const mt = useTeacher ? rowMax(teacher!, off, V) : 0
    let S1 = 0,
      S2 = 0,
      S3 = 0,
      A = 0
    for (let v = 0; v < V; v++) {
      const a = f(logits[off + v] - m)
      const sa = f(a * invT)
      S1 += expF32(a)
      S2 += expF32(sa)
      if (useTeacher) {
        const b = f(f(teacher![off + v] - mt) * invT)
        const et = expF32(b)
        S3 += et
        A += et * (b - sa)
      }
    }
    stats[2 * t] = log64(S1) - (logits[off + y] - m)
    stats[2 * t + 1] = useTeacher ? A / S3 + log64(S2) - log64(S3) : 0
    const inv1 = f(1.0 / S1),
      inv2 = f(1.0 / S2),
      inv3 = useTeacher ? f(1.0 / S3) : 0
    for (let v = 0; v < V; v++) {
      const a = f(logits[off + v] - m)
      const p = f(expF32(a) * inv1)
      const qs = f(expF32(f(a * invT)) * inv2)
      const qt = useTeacher ? f(expF32(f(f(teacher![off + v] - mt) * invT)) * inv3) : 0
      dlogits[off + v] = f(f(cCE * p) + f(cKL * f(qs - qt)))
    }
    dlogits[off + y] = f(dlogits[off + y] - cCE)
  }
}
