// SliceGPT (Ashkboos et al. 2024): fold the RMSNorm scales into the Linears, rotate the residual stream
// of every block into the principal basis of its calibration activations, and delete the directions
// that carry the least variance: every matrix that reads or writes the residual loses rows or columns,
// and shortcut matrices carry the residual from one block's basis into the next's. The math is in
// compress/structure/slicegpt-*.ts; the sliced model's format in arch/sliced-llama.ts.

import { WhittleError } from '../../errors'
import { choiceParam, intParam, numberParam, type ParamSpec } from '../../../contract/method-params'
import { withReplacements } from '../../model/model-view'
import { sliceGpt } from '../structure/slicegpt-slice'
import { slicedWidth } from '../structure/slicegpt-rotate'
import type { CompressionMethod } from './method'
import { ParamReader } from './params'

export interface SliceGptParams {
  slicing: number
  roundTo: number
  form: 'sliced' | 'dense'
}

export const SLICEGPT_PARAMS: readonly ParamSpec[] = [
  numberParam('slicing', 0.25, 0, 0.95, 'Fraction of the hidden dimension deleted from the residual stream', 0.05),
  intParam('round_to', 8, 1, 1024, 'The kept width is rounded down to a multiple of this'),
  choiceParam(
    'form',
    'sliced',
    ['sliced', 'dense'],
    'sliced: narrower matrices + shortcut matrices (Whittle reads it back); dense: lifted back to the hidden size, a plain Llama',
  ),
]

export const slicegpt: CompressionMethod<SliceGptParams> = {
  name: 'slicegpt',
  kind: 'structure',
  summary:
    'SliceGPT: fold norms, rotate each block into the PCA basis of its calibration inputs, delete the weakest directions',
  params: SLICEGPT_PARAMS,
  needs: { calibration: true, hessian: false },
  parseParams(raw, where) {
    const r = new ParamReader(raw, where, SLICEGPT_PARAMS)
    const slicing = r.num('slicing')
    const roundTo = r.int('round_to')
    const form = r.oneOf<'sliced' | 'dense'>('form')
    r.done()
    return { slicing, roundTo, form }
  },
  predict: (p) => ({ bitsPerWeight: 32, format: `sliced ${Math.round(p.slicing * 100)}%` }),
  async compressGroup() {
    throw new WhittleError('validation', null, 'slicegpt works on the whole model, not on single Linears')
  },
  async restructure(ctx) {
    if (ctx.quantized?.size)
      throw new WhittleError(
        'validation',
        null,
        'slicegpt rotates every weight, which would undo an earlier quantize step: put slicegpt first',
      )
    const D = ctx.view.arch.hiddenSize
    const width = slicedWidth(D, ctx.params.slicing, ctx.params.roundTo)
    if (width < 1)
      throw new WhittleError(
        'validation',
        null,
        `slicegpt: slicing ${ctx.params.slicing} of ${D} leaves no multiple of ${ctx.params.roundTo}`,
      )
    const { model, dims } = await sliceGpt(ctx.pool, ctx.view, {
      width,
      fraction: ctx.params.slicing,
      form: ctx.params.form,
      windows: ctx.windows ?? [],
      signal: ctx.signal,
      onProgress: ctx.onProgress,
    })
    const shortcuts = ctx.params.form === 'sliced' ? ', shortcut matrices added' : ', lifted back to a dense model'
    return {
      view: withReplacements({ ...model, runtime: ctx.view.runtime }),
      // Every tensor was rewritten (rotated): no earlier record describes any of them.
      renames: new Map(),
      changed: [],
      note: `sliced the residual ${D} → ${dims[0]} (${Math.round(ctx.params.slicing * 100)}%)${shortcuts}`,
    }
  },
}
