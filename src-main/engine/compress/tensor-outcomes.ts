// Outcome bookkeeping of a layer-wise step: after a method has compressed one decoder layer's Linears,
// each becomes a TensorOutcome for the report (weight and output errors, sparsity, the N:M verdict, the
// mask thumbnail), and the step's quantization grids replace (or drop) the ones kept for packed exports.

import type { SampledInputStats } from '../calibration/layer-inputs'
import { cancellationPoint } from '../jobs/cancel'
import { relativeError } from './measures'
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

/**
 * ‖XWᵀ − (X/s)Ŵᵀ‖ / ‖XWᵀ‖ over the sampled rows of X (s = 1 unless the method folded a scale). Seconds of
 * main-thread work on a 1.1B model's Linears, so it lets a cancel in between rows.
 */
async function relativeOutputError(
  s: SampledInputStats,
  W: Float32Array,
  Q: Float32Array,
  rows: number,
  cols: number,
  inputScale?: Float32Array,
): Promise<number> {
  let num = 0,
    den = 0
  const xs = new Float32Array(cols)
  for (let t = 0; t < s.sampleRows; t++) {
    await cancellationPoint()
    const x = s.sample.subarray(t * cols, (t + 1) * cols)
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
        ? await relativeOutputError(input, original, l.weight, l.rows, l.cols, o.inputScale)
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
