// GPTVQ's codebook update (the paper's M-step after the column loop): with every assignment fixed, the
// layer's output error tr((W − Q) H (W − Q)ᵀ) is a quadratic in the centroids, since Q is linear in them
// (Q = decode(C)). The reference takes 25 Adam steps on it; conjugate gradients reach the minimum of a
// quadratic directly, so a few steps do. The stored (int8 or f16) codebook is then re-derived, and the
// update is kept only when the stored result lowers the error. W·H products run on the WASM matmul
// when a pool has the kernel memory for them, else in TS.

import { matmul } from '../../forward/parallel-ops'
import type { WorkerPool } from '../../pool/worker-pool'
import { storeCodebook, type CodebookDtype } from './vq-codebook'
import type { VqLayout } from './vq-layout'

/** Conjugate-gradient steps of the update (the quadratic has codebooks · k · d unknowns). */
export const CODEBOOK_UPDATE_STEPS = 20

/** M · H for M [rows, cols] and the symmetric H [cols, cols]. */
interface HessianProduct {
  apply(M: Float32Array): Promise<Float32Array>
  release(): void
}

function tsProduct(H: Float64Array, rows: number, cols: number): HessianProduct {
  return {
    async apply(M) {
      const out = new Float64Array(rows * cols)
      for (let r = 0; r < rows; r++)
        for (let c = 0; c < cols; c++) {
          const m = M[r * cols + c]
          if (m === 0) continue
          const h = c * cols
          const o = r * cols
          for (let j = 0; j < cols; j++) out[o + j] += m * H[h + j]
        }
      return Float32Array.from(out)
    },
    release() {},
  }
}

function wasmProduct(pool: WorkerPool, H: Float64Array, rows: number, cols: number): HessianProduct | null {
  const held = pool.arena.tryAlloc([cols * cols * 4, rows * cols * 4, rows * cols * 4])
  if (!held) return null
  const [h, m, y] = held
  pool.arena.f32(h, 0, cols * cols).set(H)
  return {
    async apply(M) {
      pool.arena.f32(m, 0, rows * cols).set(M)
      // y = M · Hᵀ = M · H (H is symmetric).
      await matmul(pool, m.ptr, h.ptr, y.ptr, rows, cols, cols)
      return pool.arena.f32(y, 0, rows * cols).slice()
    },
    release() {
      for (const r of held) pool.arena.release(r)
    },
  }
}

function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0
  for (let i = 0; i < a.length; i++) s += a[i] * b[i]
  return s
}

/** tr(E H Eᵀ) given E and E·H. */
function quadratic(E: Float32Array, EH: Float32Array): number {
  return dot(E, EH)
}

export interface CodebookUpdate {
  /** The output error tr(EHEᵀ) of the codebooks before and after (after ≤ before: a worse update is dropped). */
  lossBefore: number
  lossAfter: number
  /** Whether the updated codebooks were kept. */
  kept: boolean
}

/**
 * Updates `codebooks` (one k × d array per codebook, stored values) in place to lower tr((W − Q) H (W − Q)ᵀ),
 * the assignments fixed; `scales` receives each codebook's int8 scale. W is the weight before quantization
 * (dead columns zeroed), H = Σ XᵀX as captured (f64, cols × cols).
 */
export async function updateCodebooks(
  layout: VqLayout,
  W: Float32Array,
  H: Float64Array,
  codebooks: Float32Array[],
  scales: number[],
  assignments: Int32Array,
  dtype: CodebookDtype,
  pool?: WorkerPool,
): Promise<CodebookUpdate> {
  const { rows, cols, k, d } = layout
  const size = k * d
  const flat = new Float64Array(codebooks.length * size)
  codebooks.forEach((cb, i) => flat.set(cb, i * size))
  const product = (pool && wasmProduct(pool, H, rows, cols)) || tsProduct(H, rows, cols)
  try {
    const Q = new Float32Array(rows * cols)
    const residual = (C: ArrayLike<number>): Float32Array => {
      layout.decode(C, assignments, Q)
      return W.map((w, i) => w - Q[i])
    }
    const E0 = residual(flat)
    const EH0 = await product.apply(E0)
    const lossBefore = quadratic(E0, EH0)
    // r = −∇ = 2 · gather(E·H); the curvature along p is 2 · gather(decode(p)·H).
    const x = flat.slice()
    const r = layout.gather(EH0, assignments).map((v) => 2 * v)
    const p = r.slice()
    let rr = dot(r, r)
    const rr0 = rr
    const P = new Float32Array(rows * cols)
    for (let step = 0; step < CODEBOOK_UPDATE_STEPS && rr > 1e-24 * rr0 && rr > 0; step++) {
      layout.decode(p, assignments, P)
      const Ap = layout.gather(await product.apply(P), assignments).map((v) => 2 * v)
      const pAp = dot(p, Ap)
      if (!(pAp > 0)) break
      const alpha = rr / pAp
      for (let i = 0; i < x.length; i++) {
        x[i] += alpha * p[i]
        r[i] -= alpha * Ap[i]
      }
      const rrNew = dot(r, r)
      const beta = rrNew / rr
      for (let i = 0; i < p.length; i++) p[i] = r[i] + beta * p[i]
      rr = rrNew
    }
    const updated = codebooks.map((_, i) => Float32Array.from(x.subarray(i * size, (i + 1) * size)))
    const newScales = updated.map((cb) => storeCodebook(cb, dtype))
    const flatNew = new Float64Array(flat.length)
    updated.forEach((cb, i) => flatNew.set(cb, i * size))
    const E1 = residual(flatNew)
    const lossAfter = quadratic(E1, await product.apply(E1))
    if (!(lossAfter < lossBefore)) return { lossBefore, lossAfter: lossBefore, kept: false }
    updated.forEach((cb, i) => codebooks[i].set(cb))
    newScales.forEach((s, i) => (scales[i] = s))
    return { lossBefore, lossAfter, kept: true }
  } finally {
    product.release()
  }
}
