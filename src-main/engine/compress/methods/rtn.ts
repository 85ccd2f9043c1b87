// Round-to-nearest: min-max uniform quantization of every row (per channel) or every group of
// `group_size` input columns, with no calibration. Bits 2–8, symmetric or asymmetric.

import { minmaxGrid, quantizeValue } from '../quant/minmax'
import { effectiveGroup, uniformBitsPerWeight } from '../quant/grouping'
import type { CompressionMethod } from './method'
import { ParamReader } from './params'

export interface UniformParams {
  bits: number
  groupSize: number
  sym: boolean
}

export function parseUniform(r: ParamReader): UniformParams {
  return { bits: r.int('bits', 4, 2, 8), groupSize: r.groupSize(), sym: r.bool('sym', false) }
}

export function uniformFormat(p: UniformParams): string {
  return `w${p.bits} ${p.groupSize > 0 ? `g${p.groupSize}` : 'per-channel'} ${p.sym ? 'sym' : 'asym'}`
}

/** Quantizes W [rows, cols] in place. */
export function rtnQuantize(W: Float32Array, rows: number, cols: number, p: UniformParams): void {
  const g = effectiveGroup(cols, p.groupSize)
  for (let r = 0; r < rows; r++) {
    for (let c0 = 0; c0 < cols; c0 += g) {
      const n = Math.min(g, cols - c0)
      const grid = minmaxGrid(W, r * cols + c0, n, 1, p.bits, p.sym)
      for (let c = c0; c < c0 + n; c++) W[r * cols + c] = quantizeValue(W[r * cols + c], grid)
    }
  }
}

export const rtn: CompressionMethod<UniformParams> = {
  name: 'rtn',
  kind: 'quantize',
  needs: { calibration: false, hessian: false },
  parseParams(raw, where) {
    const r = new ParamReader(raw, where)
    const p = parseUniform(r)
    r.done()
    return p
  },
  predict: (p, _rows, cols) => ({ bitsPerWeight: uniformBitsPerWeight(p.bits, cols, p.groupSize, p.sym), format: uniformFormat(p) }),
  async compressGroup(ctx) {
    return ctx.linears.map((l) => {
      const p = l.params
      rtnQuantize(l.weight, l.rows, l.cols, p)
      return { name: l.name, bitsPerWeight: uniformBitsPerWeight(p.bits, l.cols, p.groupSize, p.sym), format: uniformFormat(p) }
    })
  },
}
