// GPTQ (Frantar et al.): quantize a Linear column by column, feeding each column's rounding error
// back into the columns not yet quantized, weighted by the inverse Hessian of the layer's inputs.
// Faithful to the reference implementation's choices (see ../shared/reference/README.md):
// - per-channel grids come from the full weight before dead columns are zeroed;
// - dead inputs (H_ii = 0) get H_ii = 1 and zero weights;
// - act-order permutes columns by descending diag(H); without static groups, groups form over the
//   permuted order; with static groups, grids come from the unpermuted weight;
// - damping adds damp · mean(diag H); Hinv is the upper Cholesky factor of H⁻¹;
// - blocks of `block_size` columns: error feedback within the block, one lazy update after it;
// - a group's grid is computed from the weights as they stand at the start of the current block.
// With a worker pool the two O(n³)-ish parts run on the WASM kernels: the inverse Cholesky factor and
// the lazy update W[:, i2:] -= Err · Hinv[i1:i2, i2:] (a matmul, O(rows·cols²), the dominant cost).
// Without one, everything runs in TS: the reference path.

import { WhittleError } from '../../errors'
import { cancellationPoint } from '../../jobs/cancel'
import type { WorkerPool } from '../../pool/worker-pool'
import { uniformBitsPerWeight } from '../quant/grouping'
import { minmaxGrid, quantizeValue, type QuantGrid } from '../../numerics/minmax-grid'
import { GridRecorder, type UniformGridRecord } from '../quant/record'
import type { CompressionMethod } from './method'
import {
  allocBlockBuffers,
  allocKernelBuffers,
  lazyUpdateTs,
  lazyUpdateWasm,
  loadBlockU,
  loadBlockZeroMask,
  quantizePieceOnWorkers,
  releaseBlockBuffers,
  releaseKernelBuffers,
} from './gptq-kernels'
import { planGroupThenDropHessian, planHessian, type GptqHessianPlan, type HessianPlanParams } from './gptq-plan'
import { ParamReader } from './params'
import { parseUniform, uniformFormat, uniformParamSpecs, type UniformParams } from '../quant/uniform-format'
import { boolParam, intParam, numberParam, type ParamSpec } from '../../../contract/method-params'

export interface GptqParams extends UniformParams, HessianPlanParams {
  blockSize: number
  staticGroups: boolean
  /** Weights that are exactly 0 (pruned by an earlier step) stay 0: no error feedback refills them. */
  preserveZeros?: boolean
}

const f = Math.fround

// Imported by sparsegpt.ts, gptvq.ts, pb-llm.ts and the tests from here.
export { planHessian, planHessianAsync, type GptqHessianPlan } from './gptq-plan'
// Imported by gptvq.ts and pb-llm.ts from here.
export {
  allocKernelBuffers,
  lazyUpdateTs,
  lazyUpdateWasm,
  releaseKernelBuffers,
  type KernelBuffers,
} from './gptq-kernels'

/** W[r, perm[c]] = src[r, c] for the columns [c0, c1) of src, which holds W's columns in the working order. */
function unpermuteColumns(
  W: Float32Array,
  src: Float32Array,
  rows: number,
  cols: number,
  perm: Int32Array,
  c0: number,
  c1: number,
): void {
  for (let r = 0; r < rows; r++) {
    const row = r * cols
    for (let c = c0; c < c1; c++) W[row + perm[c]] = src[row + c]
  }
}

/** Per-row grids over columns [c0, c0 + n) of W (row-major rows × cols). */
function rowGrids(W: Float32Array, rows: number, cols: number, c0: number, n: number, p: UniformParams): QuantGrid[] {
  const grids: QuantGrid[] = []
  for (let r = 0; r < rows; r++) grids.push(minmaxGrid(W, r * cols + c0, n, 1, p.bits, p.sym, p.scaleDtype))
  return grids
}

/** The permutation used and the grids behind the quantized weight (for packed exports). */
export interface GptqResult {
  perm: Int32Array
  /** null when the loop only pruned. */
  record: UniformGridRecord | null
}

/**
 * What the OBS column loop removes besides rounding: SparseGPT's masks (Frantar & Alistarh). Unstructured:
 * at the start of each block, prune where w² / Hinv_cc² is at or below the value at index ⌊p·n⌋ of that
 * block's scores; N:M: every M columns, the M − N lowest scores of each row.
 */
export interface ObsPrune {
  sparsity: number
  pattern: { n: number; m: number } | null
}

/** Marks the pruned entries of rows × [c0, c0 + count) of Wp (mask holds rows × B, column-relative). */
function selectBlockMask(
  Wp: Float32Array,
  U: Float32Array,
  rows: number,
  cols: number,
  c0: number,
  count: number,
  B: number,
  prune: ObsPrune,
  mask: Uint8Array,
): void {
  const score = (r: number, c: number): number =>
    f(f(Wp[r * cols + c] * Wp[r * cols + c]) / f(U[c * cols + c] * U[c * cols + c]))
  if (!prune.pattern) {
    const all = new Float32Array(rows * count)
    for (let r = 0; r < rows; r++) for (let i = 0; i < count; i++) all[r * count + i] = score(r, c0 + i)
    const sorted = all.slice().sort()
    const threshold = sorted[Math.min(sorted.length - 1, Math.floor(all.length * prune.sparsity))]
    for (let r = 0; r < rows; r++)
      for (let i = 0; i < count; i++) mask[r * B + i] = all[r * count + i] <= threshold ? 1 : 0
  }
}

/** N:M: the M − N lowest scores of each row in columns [c, c + M) (scores taken from Wp as it stands now). */
function selectNmMask(
  Wp: Float32Array,
  U: Float32Array,
  rows: number,
  cols: number,
  c: number,
  i: number,
  B: number,
  { n, m }: { n: number; m: number },
  mask: Uint8Array,
): void {
  const end = Math.min(cols, c + m)
  const idx: number[] = []
  const s = new Float32Array(m)
  for (let r = 0; r < rows; r++) {
    idx.length = 0
    for (let j = c; j < end; j++) {
      s[j - c] = f(f(Wp[r * cols + j] * Wp[r * cols + j]) / f(U[j * cols + j] * U[j * cols + j]))
      idx.push(j - c)
    }
    idx.sort((a, b) => s[a] - s[b] || a - b)
    for (let k = 0; k < idx.length - n; k++) mask[r * B + i + idx[k]] = 1
  }
}

/**
 * A quantizer other than the uniform grids, for the OBS column loop (PB-LLM's binary and 8-bit weights):
 * the value the weight `w` of row `r`, column `c` (in the weight's own column order) becomes.
 */
export type ElementQuantizer = (r: number, c: number, w: number) => number

/**
 * The OBS column loop shared by GPTQ and SparseGPT: quantizes (p.bits, unless `quantize` is false) and/or
 * prunes (`prune`) W [rows, cols] in place given a plan from planHessian, feeding each column's error into
 * the columns not yet done. With `quantize` false, `element` (if given) quantizes instead of the grids.
 */
export async function gptqQuantizePlanned(
  W: Float32Array,
  rows: number,
  cols: number,
  plan: GptqHessianPlan,
  p: GptqParams,
  pool?: WorkerPool,
  prune?: ObsPrune,
  quantize = true,
  element?: ElementQuantizer,
): Promise<GptqResult> {
  return obsColumnLoop(W, rows, cols, plan, p, pool, prune, quantize, element, true)
}

/**
 * gptqQuantizePlanned (same bits) with the column loop inside each block on this thread, the lazy updates
 * still on the workers: the path before #15, kept for the tests and the bench to compare against.
 */
export async function gptqQuantizePlannedLoopHere(
  W: Float32Array,
  rows: number,
  cols: number,
  plan: GptqHessianPlan,
  p: GptqParams,
  pool?: WorkerPool,
): Promise<GptqResult> {
  return obsColumnLoop(W, rows, cols, plan, p, pool, undefined, true, undefined, false)
}

async function obsColumnLoop(
  W: Float32Array,
  rows: number,
  cols: number,
  plan: GptqHessianPlan,
  p: GptqParams,
  pool: WorkerPool | undefined,
  prune: ObsPrune | undefined,
  quantize: boolean,
  element: ElementQuantizer | undefined,
  loopOnWorkers: boolean,
): Promise<GptqResult> {
  if (plan.cols !== cols)
    throw new WhittleError(
      'validation',
      null,
      `gptq: a Hessian plan for ${plan.cols} columns cannot quantize a weight with ${cols}`,
    )
  if (!Number.isSafeInteger(rows) || rows <= 0 || W.length !== rows * cols)
    throw new WhittleError('validation', null, `gptq: a weight of ${W.length} values is not ${rows}×${cols}`)
  const { perm, U } = plan
  const g = p.groupSize > 0 && p.groupSize < cols ? p.groupSize : -1
  // g_idx: a column's group. Without static groups, groups run over the permuted order.
  const gIdx = new Int32Array(cols)
  if (g > 0) for (let c = 0; c < cols; c++) gIdx[p.staticGroups ? c : perm[c]] = Math.floor(c / g)
  const recorder = new GridRecorder(rows, cols, g > 0 ? Math.ceil(cols / g) : 1, p, gIdx)
  const record = (group: number, gs: QuantGrid[]): QuantGrid[] => {
    for (let r = 0; r < rows; r++) recorder.set(group, r, gs[r])
    return gs
  }
  let grids = g < 0 && quantize ? record(0, rowGrids(W, rows, cols, 0, cols, p)) : []
  for (const i of plan.dead) for (let r = 0; r < rows; r++) W[r * cols + i] = 0
  const staticGrids: QuantGrid[][] = []
  if (g > 0 && p.staticGroups && quantize) {
    for (let c0 = 0; c0 < cols; c0 += g)
      staticGrids.push(record(c0 / g, rowGrids(W, rows, cols, c0, Math.min(g, cols - c0), p)))
  }
  const B = p.blockSize
  // Kernel memory also for a weight narrower than one block (no lazy update then), so its column loop runs
  // on the workers too rather than in JS here.
  const kernel = pool ? allocKernelBuffers(pool, rows, cols, B) : null
  // The column loop inside each block on the workers, rows split (gptq_block_rows, same bits as the loop
  // below): for plain quantization on grids that change only at group boundaries (not static groups in
  // act-order, where each column may take another group's grid).
  const gridsByColumnRanges = g < 0 || !(p.staticGroups && p.actOrder)
  // Weights an earlier step pruned (preserve_zeros): quantized as 0 wherever the loop runs.
  const keepZeros = !prune && p.preserveZeros === true && W.some((x) => x === 0)
  const blockKernel =
    kernel && loopOnWorkers && quantize && !prune && !element && gridsByColumnRanges
      ? allocBlockBuffers(kernel.pool, rows, B, keepZeros)
      : null
  try {
    // The working copy: in kernel memory for the WASM update, else W itself (or its permuted copy).
    let Wp: Float32Array = kernel
      ? kernel.pool.arena.f32(kernel.w, 0, rows * cols)
      : p.actOrder
        ? new Float32Array(rows * cols)
        : W
    if (kernel || p.actOrder) {
      for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) Wp[r * cols + c] = W[r * cols + perm[c]]
    }
    const errJs = kernel ? null : new Float32Array(rows * B)
    // The quantized columns, in the working order. The block kernel's loop writes each finished block
    // straight back into W instead: W is not read again once copied into kernel memory, and at 7B a
    // down_proj's Q would be another 180 MB at the layer's peak (issue #15).
    const Q = blockKernel ? null : new Float32Array(rows * cols)
    // Snapshot of the earlier step's zeros (before any update moves them), in the working column order.
    let zeros: Uint8Array | null = null
    if (keepZeros) {
      zeros = new Uint8Array(rows * cols)
      for (let r = 0; r < rows; r++)
        for (let c = 0; c < cols; c++) zeros[r * cols + c] = W[r * cols + perm[c]] === 0 ? 1 : 0
    }
    const mask = !blockKernel && (prune || zeros) ? new Uint8Array(rows * B) : null
    for (let i1 = 0; i1 < cols; i1 += B) {
      // A block of the column loop runs on this thread: let a cancel in between blocks.
      await cancellationPoint()
      const i2 = Math.min(i1 + B, cols)
      const count = i2 - i1
      // Fresh views each block: another allocation may have grown (and so replaced) the kernel memory.
      if (kernel) Wp = kernel.pool.arena.f32(kernel.w, 0, rows * cols)
      if (blockKernel) {
        // In pieces that share one grid: the same grid choices as the loop below, at the same points.
        loadBlockU(blockKernel, U, cols, B, i1, count)
        if (zeros) loadBlockZeroMask(blockKernel, zeros, rows, cols, B, i1, count)
        for (let from = 0; from < count;) {
          const c = i1 + from
          if (g > 0 && !p.staticGroups && c % g === 0)
            grids = record(c / g, rowGrids(Wp, rows, cols, c, Math.min(g, cols - c), p))
          else if (g > 0 && p.staticGroups) grids = staticGrids[Math.floor(c / g)]
          const to = g > 0 ? Math.min(count, from + g - (c % g)) : count
          await quantizePieceOnWorkers(blockKernel, kernel!, grids, rows, cols, B, i1, count, from, to)
          Wp = kernel!.pool.arena.f32(kernel!.w, 0, rows * cols)
          from = to
        }
        unpermuteColumns(W, Wp, rows, cols, perm, i1, i2)
        if (i2 < cols) await lazyUpdateWasm(kernel!, U, rows, cols, B, i1, i2)
        continue
      }
      const err = kernel ? kernel.pool.arena.f32(kernel.err, 0, rows * B) : errJs!
      if (mask && prune) {
        mask.fill(0)
        selectBlockMask(Wp, U, rows, cols, i1, count, B, prune, mask)
      } else if (mask) {
        for (let r = 0; r < rows; r++) for (let i = 0; i < count; i++) mask[r * B + i] = zeros![r * cols + i1 + i]
      }
      for (let i = 0; i < count; i++) {
        const c = i1 + i
        if (mask && prune?.pattern && i % prune.pattern.m === 0)
          selectNmMask(Wp, U, rows, cols, c, i, B, prune!.pattern, mask)
        if (g > 0 && quantize) {
          if (!p.staticGroups) {
            if (c % g === 0) grids = record(c / g, rowGrids(Wp, rows, cols, c, Math.min(g, cols - c), p))
          } else {
            grids = staticGrids[Math.floor(perm[c] / g)]
          }
        }
        const d = U[c * cols + c]
        const uRow = c * cols
        for (let r = 0; r < rows; r++) {
          const row = r * cols
          const w = Wp[row + c]
          const kept = mask && mask[r * B + i] ? 0 : w
          const q = quantize ? quantizeValue(kept, grids[r]) : element ? element(r, perm[c], kept) : kept
          Q![row + c] = q
          const e = f(f(w - q) / d)
          err[r * B + i] = e
          // Error feedback into the rest of the block.
          for (let j = c + 1; j < i2; j++) Wp[row + j] = f(Wp[row + j] - f(e * U[uRow + j]))
        }
      }
      if (i2 < cols) {
        if (kernel) await lazyUpdateWasm(kernel, U, rows, cols, B, i1, i2)
        else lazyUpdateTs(Wp, err, U, rows, cols, B, i1, i2)
      }
    }
    // Undo the permutation into W.
    if (Q) unpermuteColumns(W, Q, rows, cols, perm, 0, cols)
    return { perm, record: quantize ? recorder.record : null }
  } finally {
    if (blockKernel) releaseBlockBuffers(blockKernel)
    if (kernel) releaseKernelBuffers(kernel)
  }
}

/**
 * Quantizes W [rows, cols] in place given H = Σ XᵀX (any positive scale; f64, cols × cols, not modified).
 * Returns the permutation used (identity without act-order) and the grids, for packed exports.
 * Without `pool` everything runs in TS (the reference path); with it, Hinv and the lazy updates run on
 * the WASM kernels (f32 sums there, so the result differs from the TS path in the last bits).
 */
export async function gptqQuantize(
  W: Float32Array,
  rows: number,
  cols: number,
  H: Float64Array,
  p: GptqParams,
  pool?: WorkerPool,
): Promise<GptqResult> {
  return gptqQuantizePlanned(W, rows, cols, planHessian(H, cols, p, pool), p, pool)
}

export const GPTQ_PARAMS: readonly ParamSpec[] = [
  ...uniformParamSpecs(-1),
  numberParam('damp', 0.01, 0, 10, 'Added to the Hessian diagonal, as a fraction of its mean', 0.001),
  intParam('block_size', 128, 1, 1 << 16, 'Columns per lazy-update block'),
  boolParam('act_order', false, 'Quantize columns in order of decreasing Hessian diagonal'),
  boolParam('static_groups', false, 'With act_order: grids from the unpermuted weight (needs a group_size)'),
  boolParam('preserve_zeros', true, 'Weights an earlier step pruned stay exactly zero'),
]

export const gptq: CompressionMethod<GptqParams> = {
  name: 'gptq',
  kind: 'quantize',
  summary: 'GPTQ: column-by-column quantization with error feedback through the calibration Hessian',
  params: GPTQ_PARAMS,
  needs: { calibration: true, hessian: true },
  parseParams(raw, where) {
    const r = new ParamReader(raw, where, GPTQ_PARAMS)
    const p: GptqParams = {
      ...parseUniform(r),
      damp: r.num('damp'),
      blockSize: r.int('block_size'),
      actOrder: r.bool('act_order'),
      staticGroups: r.bool('static_groups'),
      preserveZeros: r.bool('preserve_zeros'),
    }
    r.done()
    if (p.staticGroups && p.groupSize <= 0) r.fail('static_groups', 'needs a group_size')
    return p
  },
  predict: (p, _rows, cols) => ({
    bitsPerWeight: uniformBitsPerWeight(p.bits, cols, p.groupSize, p.sym),
    format: `${uniformFormat(p)}${p.actOrder ? ' act-order' : ''}`,
  }),
  async compressGroup(ctx) {
    // Linears reading one input share its Hessian: factored once per (damp, act-order).
    const plans = await planGroupThenDropHessian(ctx, 'gptq', (p) => p)
    const outcomes = []
    for (const [i, l] of ctx.linears.entries()) {
      const p = l.params
      const plan = plans[i]
      const { record } = await gptqQuantizePlanned(l.weight, l.rows, l.cols, plan, p, ctx.pool)
      outcomes.push({
        name: l.name,
        record: record!,
        bitsPerWeight: uniformBitsPerWeight(p.bits, l.cols, p.groupSize, p.sym),
        format: `${uniformFormat(p)}${p.actOrder ? ' act-order' : ''}`,
      })
    }
    return outcomes
  },
}
