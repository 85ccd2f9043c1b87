// SqueezeLLM (Kim et al. 2023): non-uniform quantization with a dense-and-sparse split.
// - Sensitivity: the diagonal Fisher, the mean squared gradient of the loss per weight over the
//   calibration windows (train/fisher-diagonal.ts, the training engine's backward pass; Llama family).
//   With `sensitivity: hessian`, or where the model cannot be trained, the Hessian diagonal of the
//   layer-wise output error instead: Σx² of the weight's input channel (the same for every row); when
//   it stands in for a Fisher that was asked for, the outcome's note says so and why.
// - Dense-and-sparse: the `outlier_fraction` of the tensor's weights with the largest |w|, then the
//   `sensitive_fraction` with the largest sensitivity (ties: larger |w|, then lower index), stay in
//   fp16 as a sparse matrix; defaults 0.4% + 0.05% = 0.45%, the paper's.
// - Dense part: per output row, a lookup table of 2^bits centroids by sensitivity-weighted 1-D
//   k-means over the row's dense weights (quant/kmeans.ts, quantile init); centroids stored fp16, each
//   weight coded to its nearest centroid. A sparse weight's dense code is the table's centroid nearest
//   to 0, as the authors' loader adds the sparse value to it (export/squeezellm-export.ts).
// Storage as counted (bitsPerWeight): bits per weight for the codes, 16·2^bits per table, and per
// sparse weight an fp16 value plus a 32-bit flat index (COO; the authors' CSR file costs more, see
// the export).

import { WhittleError } from '../../errors'
import { choiceParam, intParam, numberParam, type ParamSpec } from '../../../contract/method-params'
import { roundToF16 } from '../../numerics/float-encodings'
import { fisherDiagonal } from '../../train/fisher-diagonal'
import { perRowCentroidGrid } from '../quant/centroid-grid'
import { nearestCentroid, weightedKMeans1D } from '../quant/kmeans'
import type { UniformGridRecord } from '../quant/record'
import type { CompressionMethod, LinearOutcome } from './method'
import { ParamReader } from './params'

export type SqueezeLlmSensitivity = 'fisher' | 'hessian'

export interface SqueezeLlmParams {
  bits: number
  sensitivity: SqueezeLlmSensitivity
  outlierFraction: number
  sensitiveFraction: number
  /** Set by prepareStep with sensitivity fisher: this tensor's Fisher diagonal, [rows, cols]. */
  fisher?: Float32Array
  /** Set by prepareStep when the Fisher could not be computed: why the Hessian diagonal stands in. */
  fallback?: string
}

/** Bits of one sparse weight as counted: an fp16 value and a 32-bit flat index. */
export const SPARSE_ENTRY_BITS = 16 + 32
/** Bits of one centroid in a lookup table (fp16). */
export const CENTROID_BITS = 16

export const SQUEEZELLM_PARAMS: readonly ParamSpec[] = [
  intParam('bits', 4, 2, 8, 'Code width: 2^bits centroids per lookup table'),
  choiceParam(
    'sensitivity',
    'fisher',
    ['fisher', 'hessian'],
    "k-means weights: the Fisher diagonal (squared gradients over the calibration windows; Llama family) or the inputs' Σx²",
  ),
  numberParam(
    'outlier_fraction',
    0.004,
    0,
    0.5,
    'Fraction of weights with the largest |w| kept in fp16 (sparse)',
    0.001,
  ),
  numberParam(
    'sensitive_fraction',
    0.0005,
    0,
    0.5,
    'Fraction of weights with the largest sensitivity also kept in fp16 (sparse)',
    0.0005,
  ),
]

/** What SqueezeLLM stores for one Linear (the fake-quantized weight aside). */
export interface LutQuantization {
  bits: number
  rows: number
  cols: number
  /** [rows, 2^bits], ascending per row, fp16 values. */
  lut: Float32Array
  /** [rows·cols]: each weight's centroid; a sparse weight's is its row's centroid nearest to 0. */
  codes: Uint8Array
  /** Ascending flat indices (r·cols + c) of the weights kept in fp16. */
  sparseIndex: Int32Array
}

/** Storage bits per weight of a SqueezeLLM result with `sparse` weights kept. */
export function squeezeLlmBitsPerWeight(bits: number, rows: number, cols: number, sparse: number): number {
  return bits + (rows * 2 ** bits * CENTROID_BITS + sparse * SPARSE_ENTRY_BITS) / (rows * cols)
}

/**
 * The flat indices of the dense-and-sparse split: the `outlierFraction`·n largest |w|, then the
 * `sensitiveFraction`·n largest sensitivities among the rest (ties: larger |w|, then lower index).
 */
export function sparseSelection(
  W: Float32Array,
  sensitivity: ArrayLike<number>,
  outlierFraction: number,
  sensitiveFraction: number,
): Int32Array {
  const n = W.length
  const nOut = Math.round(outlierFraction * n)
  const nSens = Math.min(n - nOut, Math.round(sensitiveFraction * n))
  if (nOut + nSens === 0) return new Int32Array(0)
  const byMagnitude = Int32Array.from({ length: n }, (_, i) => i).sort(
    (a, b) => Math.abs(W[b]) - Math.abs(W[a]) || a - b,
  )
  const chosen = new Uint8Array(n)
  for (let i = 0; i < nOut; i++) chosen[byMagnitude[i]] = 1
  if (nSens > 0) {
    const rest = byMagnitude.subarray(nOut)
    const bySensitivity = Int32Array.from(rest).sort(
      (a, b) => sensitivity[b] - sensitivity[a] || Math.abs(W[b]) - Math.abs(W[a]) || a - b,
    )
    for (let i = 0; i < nSens; i++) chosen[bySensitivity[i]] = 1
  }
  const out = new Int32Array(nOut + nSens)
  let j = 0
  for (let i = 0; i < n; i++) if (chosen[i]) out[j++] = i
  return out
}

/**
 * Quantizes W [rows, cols] in place: sparse weights to fp16, the rest to their table's nearest
 * centroid. `sensitivity` [rows·cols] weighs the k-means (and picks the sensitive sparse weights).
 */
export function squeezeLlmQuantize(
  W: Float32Array,
  rows: number,
  cols: number,
  sensitivity: ArrayLike<number>,
  p: Pick<SqueezeLlmParams, 'bits' | 'outlierFraction' | 'sensitiveFraction'>,
): LutQuantization {
  if (W.length !== rows * cols || sensitivity.length !== rows * cols)
    throw new WhittleError(
      'validation',
      null,
      `squeezellm: ${W.length} weights / ${sensitivity.length} sensitivities for ${rows}×${cols}`,
    )
  const k = 2 ** p.bits
  const sparseIndex = sparseSelection(W, sensitivity, p.outlierFraction, p.sensitiveFraction)
  const sparse = new Uint8Array(W.length)
  for (const i of sparseIndex) sparse[i] = 1
  const lut = new Float32Array(rows * k)
  const codes = new Uint8Array(W.length)
  for (let r = 0; r < rows; r++) {
    const values: number[] = [],
      weights: number[] = []
    for (let i = r * cols; i < (r + 1) * cols; i++) {
      if (sparse[i]) continue
      values.push(W[i])
      weights.push(sensitivity[i])
    }
    // A row with no dense weight left (everything kept sparse) gets a table of zeros.
    const table = values.length ? weightedKMeans1D(values, weights, k).centroids : new Float64Array(k)
    // fp16 values; + 0 turns a −0 into +0, so a weight and its table entry compare as the same number.
    const stored = Float32Array.from(table, (v) => roundToF16(v) + 0).sort()
    lut.set(stored, r * k)
    const zeroCode = nearestCentroid(stored, 0)
    for (let i = r * cols; i < (r + 1) * cols; i++) {
      if (sparse[i]) {
        codes[i] = zeroCode
        W[i] = roundToF16(W[i]) + 0
      } else {
        codes[i] = nearestCentroid(stored, W[i])
        W[i] = stored[codes[i]]
      }
    }
  }
  return { bits: p.bits, rows, cols, lut, codes, sparseIndex }
}

/**
 * What the squeezellm export needs beyond the weights: the tables (encoding 'lut'). Codes and the
 * sparse part are derived from the fake-quant weights when packing (a weight not on its row's table is
 * sparse), as codesFromWeights derives GPTQ codes.
 */
export function lutRecord(q: LutQuantization): UniformGridRecord {
  return {
    bits: q.bits,
    groupSize: -1,
    sym: false,
    rows: q.rows,
    cols: q.cols,
    scales: new Float32Array(0),
    zeros: new Int32Array(0),
    gIdx: new Int32Array(0),
    encoding: 'lut',
    lut: q.lut,
  }
}

function squeezeLlmFormat(p: SqueezeLlmParams): string {
  const sparse = +((p.outlierFraction + p.sensitiveFraction) * 100).toFixed(3)
  return `lut w${p.bits} + ${sparse}% fp16`
}

/** Per-weight sensitivity from the inputs' Σx² (the Hessian diagonal): column c's value on every row. */
function hessianSensitivity(sumSq: Float64Array, rows: number, cols: number): Float64Array {
  const s = new Float64Array(rows * cols)
  for (let r = 0; r < rows; r++) s.set(sumSq, r * cols)
  return s
}

export const squeezellm: CompressionMethod<SqueezeLlmParams> = {
  name: 'squeezellm',
  kind: 'quantize',
  summary:
    'SqueezeLLM: per-row lookup tables of 2^bits centroids by Fisher-weighted k-means, 0.45% outliers and sensitive weights kept in fp16',
  params: SQUEEZELLM_PARAMS,
  needs: { calibration: true, hessian: false },
  parseParams(raw, where) {
    const r = new ParamReader(raw, where, SQUEEZELLM_PARAMS)
    const p: SqueezeLlmParams = {
      bits: r.int('bits'),
      sensitivity: r.oneOf<SqueezeLlmSensitivity>('sensitivity'),
      outlierFraction: r.num('outlier_fraction'),
      sensitiveFraction: r.num('sensitive_fraction'),
    }
    if (p.outlierFraction + p.sensitiveFraction > 0.5)
      r.fail(
        'sensitive_fraction',
        `plus outlier_fraction must be at most 0.5 (got ${p.outlierFraction + p.sensitiveFraction})`,
      )
    r.done()
    return p
  },
  predict: (p, rows, cols) => ({
    bitsPerWeight: squeezeLlmBitsPerWeight(
      p.bits,
      rows,
      cols,
      Math.round(p.outlierFraction * rows * cols) + Math.round(p.sensitiveFraction * rows * cols),
    ),
    format: squeezeLlmFormat(p),
  }),
  async prepareStep(targets, step) {
    const wanted = targets.filter((t) => t.params.sensitivity === 'fisher')
    if (wanted.length === 0) return
    if (!step.windows?.length)
      throw new WhittleError('validation', null, 'squeezellm: the Fisher needs calibration windows')
    let fisher: Map<string, Float32Array>
    try {
      fisher = await fisherDiagonal(step.pool, step.view, step.windows, {
        signal: step.signal,
        onProgress: step.onProgress,
      })
    } catch (e) {
      if (!(e instanceof WhittleError && e.code === 'unsupported')) throw e
      for (const t of wanted) t.params.fallback = `Hessian diagonal instead of the Fisher: ${e.message}`
      return
    }
    for (const t of wanted) {
      const f = fisher.get(t.name)
      if (!f || f.length !== t.rows * t.cols)
        throw new WhittleError('not-found', step.view.files.path, `squeezellm: no Fisher diagonal for ${t.name}`)
      t.params.fisher = f
    }
  },
  async compressGroup(ctx) {
    const out: LinearOutcome[] = []
    for (const l of ctx.linears) {
      const p = l.params
      if (!l.weight.every(Number.isFinite))
        throw new WhittleError('validation', null, `squeezellm: ${l.name} has non-finite weights`)
      let sensitivity: ArrayLike<number>
      let note: string | undefined
      if (p.sensitivity === 'fisher' && p.fisher) sensitivity = p.fisher
      else {
        if (!ctx.input)
          throw new WhittleError('validation', null, `squeezellm: ${l.name} has no calibration statistics`)
        sensitivity = hessianSensitivity(ctx.input.sumSq, l.rows, l.cols)
        if (p.sensitivity === 'fisher')
          note = p.fallback ?? 'Hessian diagonal instead of the Fisher (none was computed)'
      }
      const q = squeezeLlmQuantize(l.weight, l.rows, l.cols, sensitivity, p)
      const sparse = q.sparseIndex.length
      out.push({
        name: l.name,
        bitsPerWeight: squeezeLlmBitsPerWeight(p.bits, l.rows, l.cols, sparse),
        format: squeezeLlmFormat(p),
        ...(note ? { note } : {}),
        record: lutRecord(q),
        grid: perRowCentroidGrid(q.lut, l.rows, 2 ** p.bits, sparse / (l.rows * l.cols)),
      })
    }
    return out
  },
}
