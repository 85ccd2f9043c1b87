// Outcome bookkeeping of a layer-wise step: after a method has compressed one decoder layer's Linears,
// each becomes a TensorOutcome for the report (weight and output errors, sparsity, the N:M verdict, the
// mask thumbnail), and the step's quantization grids replace (or drop) the ones kept for packed exports.

import type { SampledInputStats } from '../calibration/layer-inputs'
import { relativeError } from './measures'
import { relativeOutputError } from './output-error'
import type { CompressionMethod, GroupContext, LinearOutcome } from './methods/method'
import type { TensorOutcome } from './pipeline-types'
import { checkNm, maskThumbnail, zeroFraction } from './prune/sparsity'
import type { UniformGridRecord } from './quant/record'
import { keepGgufBytes, type GgufKeptBytes } from './gguf-types/kept-bytes'

/** Calibration rows kept per input for the output-error measure. */
export const OUTPUT_SAMPLE_ROWS = 256

/** Ŵ·diag(1/s): the weight as the unscaled input sees it, when a method folded s into the producer. */
function effectiveWeight(W: Float32Array, cols: number, s?: Float32Array): Float32Array {
  if (!s) return W
  return W.map((v, i) => v / s[i % cols])
}

/** One compressed layer, as the bookkeeping needs it. */
export interface CompressedLayer {
  /** The recipe step's index, its method's name as the recipe gives it, and the method's kind. */
  step: number
  method: string
  kind: CompressionMethod['kind']
  layer: number
  /** The groups the method was given; their linears' weights now hold the compressed values. */
  groups: GroupContext[]
  /** What the method reported, one outcome per Linear. */
  outcomes: LinearOutcome[]
  /** Each Linear's weight before the step. */
  originals: ReadonlyMap<string, Float32Array>
  /** Each group's sampled calibration inputs (null without calibration). */
  inputs: ReadonlyMap<GroupContext, SampledInputStats | null>
}

/**
 * The report's outcome of every Linear of the layer; the grids of those a uniform quantizer produced go
 * into `records`, and any older grid of a Linear this step changed otherwise is dropped.
 */
export async function layerOutcomes(
  done: CompressedLayer,
  records: Map<string, UniformGridRecord>,
  /** The GGUF bytes kept per tensor (gguf-types/kept-bytes.ts): set or dropped like `records`. */
  ggufBytes?: GgufKeptBytes,
): Promise<TensorOutcome[]> {
  const tensors: TensorOutcome[] = []
  for (const g of done.groups) {
    const input = done.inputs.get(g) ?? null
    for (const l of g.linears) {
      const o = done.outcomes.find((x) => x.name === l.name)
      if (!o) throw new Error(`${done.method} reported no outcome for ${l.name}`)
      const original = done.originals.get(l.name)!
      const { inputScale: _scale, record, nm, ggufBytes: kept, ...outcome } = o
      const relOutputError = input
        ? await relativeOutputError(g.pool, {
            sample: input.sample,
            sampleRows: input.sampleRows,
            original,
            compressed: l.weight,
            rows: l.rows,
            cols: l.cols,
            inputScale: o.inputScale,
          })
        : null
      if (record) records.set(l.name, record)
      else records.delete(l.name)
      if (ggufBytes) keepGgufBytes(ggufBytes, l.name, kept)
      tensors.push({
        ...outcome,
        step: done.step,
        method: done.method,
        layer: done.layer,
        role: l.role,
        shape: [l.rows, l.cols],
        relWeightError: relativeError(original, effectiveWeight(l.weight, l.cols, o.inputScale)),
        relOutputError,
        sparsity: zeroFraction(l.weight),
        ...(nm ? { nm: checkNm(l.weight, l.rows, l.cols, nm.n, nm.m) } : {}),
        ...(done.kind === 'prune' ? { mask: maskThumbnail(l.weight, l.rows, l.cols) } : {}),
      })
    }
  }
  return tensors
}
