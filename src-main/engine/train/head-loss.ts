// The loss at the output head and its gradient, for one pass of windows: the student's final norm and
// head (and the teacher's, for the KL term), cross-entropy against the next token plus α·T²·KL, and the
// gradient back through the head and the final norm into the final hidden states. Logits are computed a
// chunk of rows at a time, so a large vocabulary never holds [n·T, V] floats at once.

import { matmul } from '../forward/parallel-ops'
import type { TensorScope } from '../forward/block-context'
import type { ArenaTensor } from '../pool/arena-tensors'
import type { Region } from '../pool/memory-arena'
import type { WorkerPool } from '../pool/worker-pool'
import type { LlamaWeights } from './llama-weights'
import { matmulNN } from './parallel-grad'
import type { TeacherTopK } from './teacher-topk'

/** Logits (student, teacher, gradient) are computed this many bytes at a time. */
const LOGIT_CHUNK_BYTES = 48 << 20

export interface LossSettings {
  /** Softmax temperature of the KL term (T in α·T²·KL). */
  temperature: number
  /** Weight of the KL term; 0 trains on cross-entropy alone and needs no teacher. */
  alpha: number
}

/** Sums over the predictions of a micro-batch (divide by `predictions` for means). */
export interface LossSums {
  ce: number
  kl: number
  predictions: number
}

/** Logit rows per chunk for M rows over a vocabulary of V (three [R, V] float buffers per chunk). */
export function logitRowsPerChunk(M: number, V: number): number {
  return Math.max(1, Math.min(M, Math.floor(LOGIT_CHUNK_BYTES / (12 * V))))
}

/** What the head's loss reads: the models, the loss settings and the window length. */
export interface HeadModels {
  pool: WorkerPool
  student: LlamaWeights
  /** Null trains on cross-entropy alone. */
  teacher: LlamaWeights | null
  loss: LossSettings
  seqlen: number
}

/**
 * Adds ∂L/∂(final hidden states) into dx for the windows whose final states start at finalPtr, and
 * returns the loss sums with the most kernel memory held meanwhile.
 */
export async function headLossAndGrad(
  head: HeadModels,
  windows: Int32Array[],
  finalPtr: number,
  teacherFinal: ArenaTensor | null,
  dx: ArenaTensor,
  scale: number,
  scope: TensorScope,
  /** With teacherFinal: store each row's top-k; without: rebuild the teacher's logits from the cache. */
  cache: { topk: TeacherTopK; keys: readonly number[] } | null,
): Promise<LossSums & { peakBytes: number }> {
  const pool = head.pool,
    k = pool.kernels,
    arena = pool.arena
  const s = head.student,
    H = s.arch.hiddenSize,
    V = s.vocab,
    T = head.seqlen,
    M = windows.length * T
  const t = head.teacher
  const Ht = t?.arch.hiddenSize ?? 0
  const R = logitRowsPerChunk(M, V)
  const hs = scope.alloc(R * H),
    logits = scope.alloc(R * V),
    dlogits = scope.alloc(R * V),
    dh = scope.alloc(R * H)
  const ht = t ? scope.alloc(R * Ht) : null
  const tlogits = t ? scope.alloc(R * V) : null
  const targets: Region = arena.alloc(R * 4)
  const stats: Region = arena.alloc(R * 16)
  const sums = { ce: 0, kl: 0, predictions: 0, peakBytes: 0 }
  try {
    for (let r0 = 0; r0 < M; r0 += R) {
      const n = Math.min(R, M - r0)
      const tg = new Int32Array(pool.memory.buffer, targets.ptr, n)
      for (let i = 0; i < n; i++) {
        const row = r0 + i,
          b = Math.floor(row / T),
          pos = row % T
        tg[i] = pos === T - 1 ? -1 : windows[b][pos + 1]
      }
      const eps = s.arch.normEps ?? 1e-5
      const xs = finalPtr + r0 * H * 4
      k.rmsnorm(xs, s.finalNorm.w.ptr, hs.ptr, n, H, eps)
      await matmul(pool, hs.ptr, s.head.ptr, logits.ptr, n, H, V)
      if (t && teacherFinal && ht && tlogits) {
        k.rmsnorm(teacherFinal.at(r0 * Ht), t.finalNorm.w.ptr, ht.ptr, n, Ht, t.arch.normEps ?? 1e-5)
        await matmul(pool, ht.ptr, t.head.ptr, tlogits.ptr, n, Ht, V)
        if (cache) {
          const tl = tlogits.view()
          for (let i = 0; i < n; i++)
            if ((r0 + i) % T !== T - 1) {
              const row = r0 + i
              cache.topk.store(cache.keys[Math.floor(row / T)], row % T, tl.subarray(i * V, (i + 1) * V))
            }
        }
      } else if (t && tlogits && cache) {
        const tl = tlogits.view(),
          sl = logits.view()
        for (let i = 0; i < n; i++)
          if ((r0 + i) % T !== T - 1) {
            const row = r0 + i
            cache.topk.rebuild(
              cache.keys[Math.floor(row / T)],
              row % T,
              sl.subarray(i * V, (i + 1) * V),
              tl.subarray(i * V, (i + 1) * V),
            )
          }
      }
      k.distill_loss(
        logits.ptr,
        tlogits?.ptr ?? 0,
        targets.ptr,
        dlogits.ptr,
        stats.ptr,
        n,
        V,
        head.loss.temperature,
        t ? head.loss.alpha : 0,
        scale,
      )
      const st = arena.f64(stats, 0, 2 * n)
      for (let i = 0; i < n; i++) {
        if (tg[i] < 0) continue
        sums.ce += st[2 * i]
        sums.kl += st[2 * i + 1]
        sums.predictions++
      }
      sums.peakBytes = Math.max(sums.peakBytes, arena.liveBytes)
      await matmulNN(pool, dlogits.ptr, s.head.ptr, dh.ptr, n, V, H)
      k.rmsnorm_backward(xs, s.finalNorm.w.ptr, dh.ptr, dx.at(r0 * H), n, H, eps)
    }
    return sums
  } finally {
    arena.release(targets)
    arena.release(stats)
  }
}
