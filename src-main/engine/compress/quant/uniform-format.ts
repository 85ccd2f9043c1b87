// The parameters and format label every uniform (min-max grid) quantizer shares: RTN, GPTQ, AWQ and
// SparseGPT's joint quantization. Declared here once; each method's spec includes them.

import { boolParam, choiceParam, intParam, type ParamSpec } from '../../../contract/method-params'
import type { ParamReader } from '../methods/params'
import type { ScaleDType } from '../../numerics/minmax-grid'

export interface UniformParams {
  bits: number
  groupSize: number
  sym: boolean
  /** Precision of the scales (default f16, as packed checkpoints store them). */
  scaleDtype?: ScaleDType
}

const SCALE_DTYPES: readonly ScaleDType[] = ['f16', 'f32']

/** bits, group_size, sym, scale_dtype; `bits` null for a method where they are optional (SparseGPT). */
export function uniformParamSpecs(groupSize: number, bits: number | null = 4): ParamSpec[] {
  return [
    intParam('bits', bits, 2, 8, 'Code width per weight'),
    intParam(
      'group_size',
      groupSize,
      -1,
      1 << 20,
      'Input columns sharing one scale and zero point; -1 = one grid per output row',
    ),
    boolParam('sym', false, 'Symmetric grid (no zero point)'),
    choiceParam(
      'scale_dtype',
      'f16',
      SCALE_DTYPES,
      "Precision of the stored scales (f32: the reference's exact arithmetic)",
    ),
  ]
}

/** Reads bits, group_size, sym and scale_dtype (the spec must include uniformParamSpecs). */
export function parseUniform(r: ParamReader): UniformParams {
  return {
    bits: r.int('bits'),
    groupSize: r.groupSize(),
    sym: r.bool('sym'),
    scaleDtype: r.oneOf<ScaleDType>('scale_dtype'),
  }
}

/** "w4 g128 asym", "w8 per-channel sym f32-scales". */
export function uniformFormat(p: UniformParams): string {
  return `w${p.bits} ${p.groupSize > 0 ? `g${p.groupSize}` : 'per-channel'} ${p.sym ? 'sym' : 'asym'}${p.scaleDtype === 'f32' ? ' f32-scales' : ''}`
}
