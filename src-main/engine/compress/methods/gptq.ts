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

import { WhittleError } from '../../errors'
import { inverseCholeskyUpper } from '../linalg/cholesky'
import { uniformBitsPerWeight } from '../quant/grouping'
import { minmaxGrid, quantizeValue, type QuantGrid } from '../quant/minmax'
import type { CompressionMethod } from './method'
import { ParamReader } from './params'
import { parseUniform, uniformFormat, type UniformParams } from './rtn'

export interface GptqParams extends UniformParams {
  damp: number
  blockSize: number
  actOrder: boolean
  staticGroups: boolean
}

const f = Math.fround

/** Per-row grids over columns [c0, c0 + n) of W (row-major rows × cols). */
function rowGrids(W: Float32Array, rows: number, cols: number, c0: number, n: number, p: UniformParams): QuantGrid[] {
  const grids: QuantGrid[] = []
  for (let r = 0; r < rows; r++) grids.push(minmaxGrid(W, r * cols + c0, n, 1, p.bits, p.sym))
  return grids
}

/**
 * Quantizes W [rows, cols] in place given H = Σ XᵀX (any positive scale; f64, cols × cols, not modified).
 * Returns the permutation used (identity without act-order), for exporters that need g_idx.
 */
export function gptqQuantize(W: Float32Array, rows: number, cols: number, Hin: Float64Array, p: GptqParams): Int32Array {
  const H = Hin.slice()
  const g = p.groupSize > 0 && p.groupSize < cols ? p.groupSize : -1
  let grids = g < 0 ? rowGrids(W, rows, cols, 0, cols, p) : []
  for (let i = 0; i < cols; i++) {
    if (H[i * cols + i] === 0) {
      H[i * cols + i] = 1
      for (let r = 0; r < rows; r++) W[r * cols + i] = 0
    }
  }
  let staticGrids: QuantGrid[][] = []
  if (g > 0 && p.staticGroups) {
    for (let c0 = 0; c0 < cols; c0 += g) staticGrids.push(rowGrids(W, rows, cols, c0, Math.min(g, cols - c0), p))
  }
  // Column order: identity, or by descending Hessian diagonal (stable, as torch.argsort is not
  // guaranteed to be; ties are rare in real data).
  const perm = Int32Array.from({ length: cols }, (_, i) => i)
  let Wp = W
  let Hp = H
  if (p.actOrder) {
    const diag = Array.from({ length: cols }, (_, i) => H[i * cols + i])
    perm.sort((a, b) => diag[b] - diag[a] || a - b)
    Wp = new Float32Array(rows * cols)
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) Wp[r * cols + c] = W[r * cols + perm[c]]
    Hp = new Float64Array(cols * cols)
    for (let i = 0; i < cols; i++) for (let j = 0; j < cols; j++) Hp[i * cols + j] = H[perm[i] * cols + perm[j]]
  }
  let meanDiag = 0
  for (let i = 0; i < cols; i++) meanDiag += Hp[i * cols + i]
  const damp = (p.damp * meanDiag) / cols
  for (let i = 0; i < cols; i++) Hp[i * cols + i] += damp
  const U64 = inverseCholeskyUpper(Hp, cols)
  // The reference holds Hinv in f32.
  const U = Float32Array.from(U64)

  const Q = new Float32Array(rows * cols)
  const B = p.blockSize
  const err = new Float32Array(rows * B)
  for (let i1 = 0; i1 < cols; i1 += B) {
    const i2 = Math.min(i1 + B, cols)
    const count = i2 - i1
    for (let i = 0; i < count; i++) {
      const c = i1 + i
      if (g > 0) {
        if (!p.staticGroups) {
          if (c % g === 0) grids = rowGrids(Wp, rows, cols, c, Math.min(g, cols - c), p)
        } else {
          grids = staticGrids[Math.floor(perm[c] / g)]
        }
      }
      const d = U[c * cols + c]
      for (let r = 0; r < rows; r++) {
        const w = Wp[r * cols + c]
        const q = quantizeValue(w, grids[r])
        Q[r * cols + c] = q
        const e = f(f(w - q) / d)
        err[r * B + i] = e
        // Error feedback into the rest of the block.
        const row = r * cols
        for (let j = c + 1; j < i2; j++) Wp[row + j] = f(Wp[row + j] - f(e * U[c * cols + j]))
      }
    }
    // Lazy update of the columns after the block: W[:, i2:] -= Err · Hinv[i1:i2, i2:]
    if (i2 < cols) {
      for (let r = 0; r < rows; r++) {
        const row = r * cols
        for (let j = i2; j < cols; j++) {
          let s = 0
          for (let i = 0; i < count; i++) s += err[r * B + i] * U[(i1 + i) * cols + j]
          Wp[row + j] = f(Wp[row + j] - s)
        }
      }
    }
  }
  // Undo the permutation into W.
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) W[r * cols + perm[c]] = Q[r * cols + c]
  return perm
}

export const gptq: CompressionMethod<GptqParams> = {
  name: 'gptq',
  kind: 'quantize',
  needs: { calibration: true, hessian: true },
  parseParams(raw, where) {
    const r = new ParamReader(raw, where)
    const p: GptqParams = {
      ...parseUniform(r),
      damp: r.num('damp', 0.01, 0, 10),
      blockSize: r.int('block_size', 128, 1, 1 << 16),
      actOrder: r.bool('act_order', false),
      staticGroups: r.bool('static_groups', false),
    }
    r.done()
    if (p.staticGroups && p.groupSize <= 0) r.fail('static_groups', 'needs a group_size')
    return p
  },
  predict: (p, _rows, cols) => ({ bitsPerWeight: uniformBitsPerWeight(p.bits, cols, p.groupSize, p.sym), format: `${uniformFormat(p)}${p.actOrder ? ' act-order' : ''}` }),
  async compressGroup(ctx) {
    const H = ctx.input?.hessian
    if (!H) throw new WhittleError('validation', null, `gptq: layer ${ctx.layer} ${ctx.group} has no calibration Hessian`)
    return ctx.linears.map((l) => {
      const p = l.params
      gptqQuantize(l.weight, l.rows, l.cols, H, p)
      return {
        name: l.name,
        bitsPerWeight: uniformBitsPerWeight(p.bits, l.cols, p.groupSize, p.sym),
        format: `${uniformFormat(p)}${p.actOrder ? ' act-order' : ''}`,
      }
    })
  },
}
