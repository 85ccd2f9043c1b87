// Round-to-nearest: min-max uniform quantization of every row (per channel) or every group of
// `group_size` input columns, with no calibration. Bits 2–8, symmetric or asymmetric. Scales are fp16
// by default (what a GPTQ checkpoint stores); scale_dtype f32 is the reference's exact behaviour.

import { effectiveGroup, groupCount, uniformBitsPerWeight } from '../quant/grouping'
import { minmaxGrid, quantizeValue } from '../../numerics/minmax-grid'
import { GridRecorder, sequentialGIdx, type UniformGridRecord } from '../quant/record'
import { parseUniform, uniformFormat, uniformParamSpecs, type UniformParams } from '../quant/uniform-format'
import type { ParamSpec } from '../../../contract/method-params'
import type { CompressionMethod } from './method'
import { ParamReader } from './params'

export const RTN_PARAMS: readonly ParamSpec[] = [...uniformParamSpecs(-1)]

/** Quantizes W [rows, cols] in place; returns the grids it used. */
export function rtnQuantize(W: Float32Array, rows: number, cols: number, p: UniformParams): UniformGridRecord {
  const g = effectiveGroup(cols, p.groupSize)
  const recorder = new GridRecorder(rows, cols, groupCount(cols, p.groupSize), p, sequentialGIdx(cols, p.groupSize))
  for (let r = 0; r < rows; r++) {
    for (let c0 = 0; c0 < cols; c0 += g) {
      const n = Math.min(g, cols - c0)
      const grid = minmaxGrid(W, r * cols + c0, n, 1, p.bits, p.sym, p.scaleDtype)
      recorder.set(c0 / g, r, grid)
      for (let c = c0; c < c0 + n; c++) W[r * cols + c] = quantizeValue(W[r * cols + c], grid)
    }
  }
  return recorder.record
}

export const rtn: CompressionMethod<UniformParams> = {
  name: 'rtn',
  kind: 'quantize',
  summary: 'Round-to-nearest min-max grid per row or group; no calibration',
  params: RTN_PARAMS,
  needs: { calibration: false, hessian: false },
  parseParams(raw, where) {
    const r = new ParamReader(raw, where, RTN_PARAMS)
    const p = parseUniform(r)
    r.done()
    return p
  },
  predict: (p, _rows, cols) => ({
    bitsPerWeight: uniformBitsPerWeight(p.bits, cols, p.groupSize, p.sym),
    format: uniformFormat(p),
  }),
  async compressGroup(ctx) {
    return ctx.linears.map((l) => {
      const p = l.params
      const record = rtnQuantize(l.weight, l.rows, l.cols, p)
      return {
        name: l.name,
        bitsPerWeight: uniformBitsPerWeight(p.bits, l.cols, p.groupSize, p.sym),
        format: uniformFormat(p),
        record,
      }
    })
  },
}
