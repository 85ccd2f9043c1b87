// GPTVQ (van Baalen et al. 2024, "The Blessing of Dimensionality for LLM Quantization"): vector
// quantization of a Linear on GPTQ's column loop. Each row is cut into vectors of d consecutive columns
// (d = 2 by default, 4 optional); a vector is replaced by the nearest of k = 2^(bits·d) centroids of its
// group's codebook, so `bits` index bits per weight.
// Choices, as the paper's algorithm and the authors' code make them, except where said:
// - groups: a codebook per block of `columns_per_group` columns (256) × ⌊group_size / 256⌋ rows, i.e.
//   `group_size` weights (8192 at 3 bits 2-D in the paper); a narrower tensor takes all its columns and
//   proportionally more rows (compress/quant/vq-layout.ts);
// - a column group's codebooks are fitted when the loop reaches its first column, on the weights as GPTQ's
//   feedback has left them (blocks of the lazy update never straddle a group, so that is exact);
// - the fit is k-means (EM) from a Mahalanobis-rank initialization, weighted per coordinate by
//   1 / [H⁻¹]_cc, with [H⁻¹]_cc = U_cc² from GPTQ's inverse Cholesky factor U: the weight of column c's
//   error in GPTQ's own loss (w − q)² / U_cc². The authors' code weights the fit by U_cc and the
//   assignment by 1 / U_cc; this uses the one loss for both;
// - a vector takes the centroid nearest under the same weights; its d errors are fed back column by
//   column, each after the previous one's feedback (exact OBS for the chosen centroid; the authors' code
//   feeds the d errors back together);
// - optionally (`update_codebook`) the codebooks are refitted afterwards with the assignments fixed, on
//   the layer's output error (compress/quant/vq-refine.ts), and kept only where that lowers it;
// - codebooks are stored in int8 with one f16 scale each (the paper's 8-bit codebooks), or in f16;
//   every value the loop uses is the stored one, and the bits per weight count all of it;
// - no act-order (the authors' code has none either); dead inputs (H_cc = 0) get zero weights.
// Hessian and inverse Cholesky factor come from GPTQ (planHessianAsync), the lazy updates too.

import type { LearnedGrid } from '../../../contract/api'
import { boolParam, choiceParam, intParam, numberParam, type ParamSpec } from '../../../contract/method-params'
import { WhittleError } from '../../errors'
import { cancellationPoint } from '../../jobs/cancel'
import type { WorkerPool } from '../../pool/worker-pool'
import { fitCodebook, nearestCentroid, storeCodebook, type CodebookDtype } from '../quant/vq-codebook'
import { VqLayout, type VqShape } from '../quant/vq-layout'
import { updateCodebooks } from '../quant/vq-refine'
import {
  allocKernelBuffers,
  lazyUpdateTs,
  lazyUpdateWasm,
  planHessianAsync,
  releaseKernelBuffers,
  type GptqHessianPlan,
} from './gptq'
import type { CompressionMethod, LinearOutcome } from './method'
import { ParamReader } from './params'

export interface GptvqParams extends VqShape {
  updateCodebook: boolean
  kmeansIters: number
  damp: number
  blockSize: number
}

const f = Math.fround

/** Weight pairs drawn in the codebook picture (LearnedGrid codebook2d). */
export const GRID_POINTS = 2000

const CODEBOOK_DTYPES: readonly CodebookDtype[] = ['int8', 'f16']

export const GPTVQ_PARAMS: readonly ParamSpec[] = [
  intParam('dim', 2, 1, 4, 'Vector dimension d: columns quantized together (2 or 4 in the paper)'),
  numberParam('bits', 3, 1, 4, 'Index bits per weight: k = 2^(bits·dim) centroids per codebook', 0.5),
  intParam('group_size', 8192, 16, 1 << 24, 'Weights per codebook (columns_per_group × rows)'),
  intParam('columns_per_group', 256, 1, 1 << 16, 'Columns per codebook group (a multiple of dim)'),
  choiceParam('codebook_dtype', 'int8', CODEBOOK_DTYPES, 'Codebook storage: int8 with an f16 scale each, or f16'),
  boolParam('update_codebook', false, 'Refit the codebooks on the layer output error after assignment'),
  intParam('kmeans_iters', 100, 1, 1000, 'Most EM iterations of the codebook fit'),
  numberParam('damp', 0.01, 0, 10, 'Added to the Hessian diagonal, as a fraction of its mean', 0.001),
  intParam('block_size', 128, 1, 1 << 16, 'Columns per lazy-update block (a multiple of dim)'),
]

export function gptvqFormat(p: GptvqParams): string {
  return `vq d${p.dim} k${2 ** Math.round(p.bits * p.dim)} g${p.groupSize} ${p.codebookDtype}-codebook`
}

/** What one Linear's quantization produced. */
export interface GptvqResult {
  layout: VqLayout
  /** Stored values, one k × d array per codebook (column group-major, then row block). */
  codebooks: Float32Array[]
  /** Each codebook's int8 scale (1 for f16). */
  scales: number[]
  /** Centroid index of each vector, rows × (cols / d). */
  assignments: Int32Array
  /** The first codebook over a sample of its points (2-D only). */
  grid?: LearnedGrid
  /** The codebook update's effect on the output error, when it ran. */
  update?: { lossBefore: number; lossAfter: number; kept: boolean }
}

/** Importance of each column's errors in GPTQ's loss: 1 / U_cc². */
function columnWeights(U: Float32Array, cols: number): Float64Array {
  return Float64Array.from({ length: cols }, (_, c) => 1 / (U[c * cols + c] * U[c * cols + c]))
}

/** Evenly spaced sample of at most `max` of the points (n × 2), as pairs. */
function samplePairs(values: Float32Array, n: number, max: number): [number, number][] {
  const m = Math.min(n, max)
  const out: [number, number][] = []
  for (let i = 0; i < m; i++) {
    const at = Math.floor((i * n) / m) * 2
    out.push([values[at], values[at + 1]])
  }
  return out
}

/**
 * Quantizes W [rows, cols] in place by GPTVQ, given GPTQ's plan of H (planHessianAsync with no act-order)
 * and H itself (for the codebook update).
 */
export async function gptvqQuantizePlanned(
  W: Float32Array,
  rows: number,
  cols: number,
  H: Float64Array,
  plan: GptqHessianPlan,
  p: GptvqParams,
  pool?: WorkerPool,
  name = 'a weight',
): Promise<GptvqResult> {
  if (plan.cols !== cols || plan.perm.some((v, i) => v !== i))
    throw new WhittleError('validation', null, `gptvq: ${name} needs a Hessian plan of ${cols} columns in order`)
  if (!Number.isSafeInteger(rows) || rows <= 0 || W.length !== rows * cols)
    throw new WhittleError('validation', null, `gptvq: ${name} holds ${W.length} values, not ${rows}×${cols}`)
  const layout = new VqLayout(rows, cols, p, name)
  const { d, k, cpg, rpg } = layout
  const { U } = plan
  for (const i of plan.dead) for (let r = 0; r < rows; r++) W[r * cols + i] = 0
  const original = W.slice()
  const colWeight = columnWeights(U, cols)
  const codebooks: Float32Array[] = new Array(layout.codebooks)
  const scales: number[] = new Array(layout.codebooks).fill(1)
  const assignments = new Int32Array(rows * layout.vectorsPerRow)
  let grid: LearnedGrid | undefined
  // Lazy-update blocks: a multiple of d, never straddling a column group.
  const B = Math.max(d, p.blockSize - (p.blockSize % d))
  const kernel = pool && B < cols ? allocKernelBuffers(pool, rows, cols, B) : null
  try {
    let Wp: Float32Array = kernel ? kernel.pool.arena.f32(kernel.w, 0, rows * cols) : W
    if (kernel) Wp.set(W)
    const errJs = kernel ? null : new Float32Array(rows * B)
    const Q = new Float32Array(rows * cols)
    for (let i1 = 0; i1 < cols;) {
      await cancellationPoint()
      const groupEnd = Math.min(cols, (Math.floor(i1 / cpg) + 1) * cpg)
      const i2 = Math.min(i1 + B, groupEnd)
      const count = i2 - i1
      if (i1 % cpg === 0) {
        // This column group's codebooks, one per row block, from the weights as they stand now.
        const width = groupEnd - i1
        for (let r0 = 0; r0 < rows; r0 += rpg) {
          // Fitting a wide layer's codebooks takes seconds: let a cancel in between them.
          await cancellationPoint()
          if (kernel) Wp = kernel.pool.arena.f32(kernel.w, 0, rows * cols)
          const r1 = Math.min(rows, r0 + rpg)
          const n = ((r1 - r0) * width) / d
          const values = new Float32Array(n * d)
          const weights = new Float32Array(n * d)
          for (let r = r0; r < r1; r++)
            for (let c = 0; c < width; c++) {
              const at = (r - r0) * width + c
              values[at] = Wp[r * cols + i1 + c]
              weights[at] = colWeight[i1 + c]
            }
          const fit = fitCodebook({ n, d, values, weights }, k, p.kmeansIters)
          const cb = layout.codebookOf(r0, i1)
          scales[cb] = storeCodebook(fit.centroids, p.codebookDtype)
          codebooks[cb] = fit.centroids
          if (cb === 0 && d === 2)
            grid = {
              kind: 'codebook2d',
              group: 0,
              centroids: [],
              points: samplePairs(values, n, GRID_POINTS),
            }
        }
      }
      // Fresh views: another allocation may have grown (and so replaced) the kernel memory meanwhile.
      if (kernel) Wp = kernel.pool.arena.f32(kernel.w, 0, rows * cols)
      const err = kernel ? kernel.pool.arena.f32(kernel.err, 0, rows * B) : errJs!
      for (let i = 0; i < count; i += d) {
        const c = i1 + i
        for (let r = 0; r < rows; r++) {
          const row = r * cols
          const cb = codebooks[layout.codebookOf(r, c)]
          const j = nearestCentroid(Wp, row + c, colWeight, c, cb, d)
          assignments[r * layout.vectorsPerRow + c / d] = j
          for (let t = 0; t < d; t++) {
            const col = c + t
            const q = cb[j * d + t]
            Q[row + col] = q
            const e = f(f(Wp[row + col] - q) / U[col * cols + col])
            err[r * B + i + t] = e
            // Error feedback into the rest of the block, the vector's own later columns included.
            const uRow = col * cols
            for (let jj = col + 1; jj < i2; jj++) Wp[row + jj] = f(Wp[row + jj] - f(e * U[uRow + jj]))
          }
        }
      }
      if (i2 < cols) {
        if (kernel && count === B) await lazyUpdateWasm(kernel, U, rows, cols, B, i1, i2)
        else lazyUpdateTs(Wp, err, U, rows, cols, B, i1, i2)
      }
      i1 = i2
    }
    W.set(Q)
  } finally {
    if (kernel) releaseKernelBuffers(kernel)
  }
  let update: GptvqResult['update']
  if (p.updateCodebook) {
    await cancellationPoint()
    update = await updateCodebooks(layout, original, H, codebooks, scales, assignments, p.codebookDtype, pool)
    if (update.kept) {
      const flat = new Float32Array(codebooks.length * k * d)
      codebooks.forEach((cb, i) => flat.set(cb, i * k * d))
      layout.decode(flat, assignments, W)
    }
  }
  if (grid?.kind === 'codebook2d') grid.centroids = samplePairs(codebooks[0], k, k)
  return { layout, codebooks, scales, assignments, grid, update }
}

/** GPTVQ of W [rows, cols] in place given H = Σ XᵀX (f64, cols × cols, not modified). */
export async function gptvqQuantize(
  W: Float32Array,
  rows: number,
  cols: number,
  H: Float64Array,
  p: GptvqParams,
  pool?: WorkerPool,
): Promise<GptvqResult> {
  const plan = await planHessianAsync(H, cols, { damp: p.damp, actOrder: false }, pool)
  return gptvqQuantizePlanned(W, rows, cols, H, plan, p, pool)
}

export const gptvq: CompressionMethod<GptvqParams> = {
  name: 'gptvq',
  kind: 'quantize',
  summary: 'GPTVQ: 2-D/4-D vector quantization with Hessian-weighted k-means codebooks on GPTQ’s error feedback',
  params: GPTVQ_PARAMS,
  needs: { calibration: true, hessian: true },
  parseParams(raw, where) {
    const r = new ParamReader(raw, where, GPTVQ_PARAMS)
    const p: GptvqParams = {
      dim: r.int('dim'),
      bits: r.num('bits'),
      groupSize: r.int('group_size'),
      columnsPerGroup: r.int('columns_per_group'),
      codebookDtype: r.oneOf<CodebookDtype>('codebook_dtype'),
      updateCodebook: r.bool('update_codebook'),
      kmeansIters: r.int('kmeans_iters'),
      damp: r.num('damp'),
      blockSize: r.int('block_size'),
    }
    r.done()
    if (p.dim === 3) r.fail('dim', 'must be 1, 2 or 4 (got 3)')
    const indexBits = p.bits * p.dim
    if (Math.abs(indexBits - Math.round(indexBits)) > 1e-9 || indexBits > 12)
      r.fail('bits', `× dim must be a whole number of index bits, at most 12 (got ${p.bits} × ${p.dim})`)
    if (p.columnsPerGroup % p.dim !== 0) r.fail('columns_per_group', `must be a multiple of dim ${p.dim}`)
    if (p.blockSize % p.dim !== 0) r.fail('block_size', `must be a multiple of dim ${p.dim}`)
    return p
  },
  predict: (p, rows, cols) => ({
    bitsPerWeight: new VqLayout(rows, cols, p).bitsPerWeight(),
    format: gptvqFormat(p),
  }),
  async compressGroup(ctx) {
    const H = ctx.input?.hessian
    if (!H)
      throw new WhittleError('validation', null, `gptvq: layer ${ctx.layer} ${ctx.group} has no calibration Hessian`)
    const plans = new Map<number, GptqHessianPlan>()
    const outcomes: LinearOutcome[] = []
    for (const l of ctx.linears) {
      const p = l.params
      let plan = plans.get(p.damp)
      if (!plan)
        plans.set(p.damp, (plan = await planHessianAsync(H, l.cols, { damp: p.damp, actOrder: false }, ctx.pool)))
      const result = await gptvqQuantizePlanned(l.weight, l.rows, l.cols, H, plan, p, ctx.pool, l.name)
      outcomes.push({
        name: l.name,
        bitsPerWeight: result.layout.bitsPerWeight(),
        format: gptvqFormat(p),
        ...(result.grid ? { grid: result.grid } : {}),
      })
    }
    return outcomes
  },
}
