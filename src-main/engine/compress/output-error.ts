// The output-error measure of a compressed Linear: ‖XWᵀ − (X/s)Ŵᵀ‖ / ‖XWᵀ‖ over the sampled calibration
// rows X (s = 1 unless the method folded an input scale into the producer). Two products of 256 rows
// by the whole weight per Linear: on the 1.1B shape that is 22 G multiply-adds a layer, which took tens
// of seconds as a JS loop on the main thread, so the products run on the matmul kernel across the
// workers, a block of W's rows at a time (kernel memory stays a few MB however large the Linear). The
// kernel sums in f32; the ratio of the two f64 sums of squares is then accurate to about 1e-6 of its
// value, far below what the report shows. The JS loop stays as the reference twin for the tests.

import { isOutOfMemory, WhittleError } from '../errors'
import { matmul } from '../forward/parallel-ops'
import { cancellationPoint } from '../jobs/cancel'
import type { Region } from '../pool/memory-arena'
import type { WorkerPool } from '../pool/worker-pool'

/** Weight bytes per block of rows (W's and Ŵ's each): a few MB, so any Linear fits in kernel memory. */
const BLOCK_BYTES = 8 << 20

/** The sampled rows X [rows, cols] and the weights compared through them. */
export interface OutputErrorInput {
  /** Sampled input rows, row-major [sampleRows, cols] (may be longer). */
  sample: Float32Array
  sampleRows: number
  /** The original weight W and the compressed Ŵ, row-major [rows, cols]. */
  original: Float32Array
  compressed: Float32Array
  rows: number
  cols: number
  /** Per-input-column scale s folded into Ŵ's producer: Ŵ sees X/s. */
  inputScale?: Float32Array
}

function checkInput(i: OutputErrorInput): void {
  const { sampleRows, rows, cols } = i
  for (const [name, v] of [
    ['sampleRows', sampleRows],
    ['rows', rows],
    ['cols', cols],
  ] as const) {
    if (!Number.isSafeInteger(v) || v < 0) throw new WhittleError('validation', null, `output error: ${name} = ${v}`)
  }
  const short = (name: string, a: Float32Array, n: number): void => {
    if (a.length < n)
      throw new WhittleError('validation', null, `output error: ${name} holds ${a.length} values, needs ${n}`)
  }
  short('the sample', i.sample, sampleRows * cols)
  short('the original weight', i.original, rows * cols)
  short('the compressed weight', i.compressed, rows * cols)
  if (i.inputScale) short('the input scale', i.inputScale, cols)
}

/** The reference: both products and the sums in f64, one sampled row at a time (the twin of the kernel path). */
export function relativeOutputErrorReference(i: OutputErrorInput): number {
  checkInput(i)
  const { sample, sampleRows, original: W, compressed: Q, rows, cols, inputScale } = i
  let num = 0,
    den = 0
  // X/s rounded to f32, as the kernel path holds it.
  const xs = new Float32Array(cols)
  for (let t = 0; t < sampleRows; t++) {
    const x = sample.subarray(t * cols, (t + 1) * cols)
    for (let c = 0; c < cols; c++) xs[c] = inputScale ? x[c] / inputScale[c] : x[c]
    for (let r = 0; r < rows; r++) {
      let y = 0,
        yq = 0
      const row = r * cols
      for (let c = 0; c < cols; c++) {
        y += x[c] * W[row + c]
        yq += xs[c] * Q[row + c]
      }
      num += (y - yq) ** 2
      den += y * y
    }
  }
  return den > 0 ? Math.sqrt(num / den) : 0
}

/**
 * ‖XWᵀ − (X/s)Ŵᵀ‖ / ‖XWᵀ‖ over the sampled rows, the products on the kernels; 0 when XWᵀ is all zero.
 * Where kernel memory is too full for even one block, the reference loop answers (slowly, but answers).
 */
export async function relativeOutputError(pool: WorkerPool, i: OutputErrorInput): Promise<number> {
  checkInput(i)
  try {
    return await onKernels(pool, i)
  } catch (e) {
    if (isOutOfMemory(e)) return relativeOutputErrorReference(i)
    throw e
  }
}

async function onKernels(pool: WorkerPool, i: OutputErrorInput): Promise<number> {
  const { sample, sampleRows: S, original: W, compressed: Q, rows, cols, inputScale } = i
  if (S === 0 || rows === 0 || cols === 0) return 0
  const blockRows = Math.max(1, Math.min(rows, Math.floor(BLOCK_BYTES / (cols * 4))))
  const arena = pool.arena
  const regions: Region[] = []
  const alloc = (bytes: number, what: string): Region => {
    const r = arena.alloc(bytes, what)
    regions.push(r)
    return r
  }
  try {
    const x = alloc(S * cols * 4, `${S}×${cols} sampled inputs`)
    arena.f32(x, 0, S * cols).set(sample.subarray(0, S * cols))
    let xs = x
    if (inputScale) {
      xs = alloc(S * cols * 4, `${S}×${cols} scaled inputs`)
      const src = sample,
        dst = arena.f32(xs, 0, S * cols)
      for (let t = 0; t < S; t++) for (let c = 0; c < cols; c++) dst[t * cols + c] = src[t * cols + c] / inputScale[c]
    }
    const w = alloc(blockRows * cols * 4, `a ${blockRows}×${cols} block of weights`)
    const q = alloc(blockRows * cols * 4, `a ${blockRows}×${cols} block of compressed weights`)
    const y = alloc(S * blockRows * 4, `${S}×${blockRows} outputs`)
    const yq = alloc(S * blockRows * 4, `${S}×${blockRows} compressed outputs`)
    let num = 0,
      den = 0
    for (let r0 = 0; r0 < rows; r0 += blockRows) {
      await cancellationPoint()
      const n = Math.min(blockRows, rows - r0)
      arena.f32(w, 0, n * cols).set(W.subarray(r0 * cols, (r0 + n) * cols))
      arena.f32(q, 0, n * cols).set(Q.subarray(r0 * cols, (r0 + n) * cols))
      await Promise.all([
        matmul(pool, x.ptr, w.ptr, y.ptr, S, cols, n),
        matmul(pool, xs.ptr, q.ptr, yq.ptr, S, cols, n),
      ])
      const a = arena.f32(y, 0, S * n),
        b = arena.f32(yq, 0, S * n)
      for (let k = 0; k < S * n; k++) {
        const d = a[k] - b[k]
        num += d * d
        den += a[k] * a[k]
      }
    }
    return den > 0 ? Math.sqrt(num / den) : 0
  } finally {
    for (const r of regions) arena.release(r)
  }
}
