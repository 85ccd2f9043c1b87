// SqueezeLLM (Kim et al. 2023): non-uniform quantization with a dense-and-sparse split.
// - Sensitivity: the diagonal Fisher, the mean squared gradient of the loss per weight over the
//   calibration windows (train/fisher-diagonal.ts, the training engine's backward pass; Llama family).
//   With `sensitivity: hessian`, or where the model cannot be trained, the Hessian diagonal of the
//   layer-wise output error instead: Σx² of the weight's input channel (the same for every row); when
//   it stands in for a Fisher that was asked for, the outcome's note says so and why.
// - Dense-and-sparse: the `outlier_fraction` of the tensor's weights with the largest |w|, then the
//   `sensitive_fraction` with the largest sensitivity (ties: larger |w|, then lower index), stay in
//   fp16 as a sparse matrix; defaults 0.4% + 0.05% = 0.45%, the paper's.
// - Dense part, the paper's (`lut_rows: 1`): per output row, a lookup table of 2^bits centroids by
//   sensitivity-weighted 1-D k-means over the row's dense weights (quant/kmeans.ts, quantile init);
//   each weight coded to its row's nearest centroid. A sparse weight's dense code is the table's
//   centroid nearest to 0, as the authors' loader adds the sparse value to it
//   (export/squeezellm-export.ts).
// - Shared tables (`lut_rows` > 1, or 0 for the whole tensor): one table of normalized centroids per run
//   of that many consecutive rows, and per row an fp16 scale; row r decodes to f16(s_r·c_j)
//   (quant/shared-lut.ts). Without the scales a shared table fits rows of different range badly
//   (measured: 8 rows sharing, ppl 9.96 against 6.87 per row on the quick protocol).
// - Centroids stored fp16, or (`lut_dtype: int8`) as int8 codes times one fp16 scale per table (the
//   codebook storage GPTVQ uses, quant/vq-codebook.ts), each decoded value then rounded to fp16 so the
//   authors' fp16 tables hold it exactly.
// Why shared and int8 tables: a per-row table of 2^bits fp16 centroids costs 16·2^bits/cols bits per
// weight, 2 bits at 3 bits on a 64-column Linear (stories260K), ~0.03 on the paper's 4096 columns; a
// shared table with row scales costs 16/cols per weight plus the tables.
// Storage as counted (bitsPerWeight): bits per weight for the codes, each table as stored, and per
// sparse weight an fp16 value plus a 32-bit flat index (COO). The authors' file holds per-row fp16
// tables and a CSR sparse part (squeezeLlmFileBitsPerWeight); where that differs, the note says so.

import { WhittleError } from '../../errors'
import { choiceParam, intParam, numberParam, type ParamSpec } from '../../../contract/method-params'
import { roundToF16 } from '../../numerics/float-encodings'
import { fisherDiagonal } from '../../train/fisher-diagonal'
import { perRowCentroidGrid } from '../quant/centroid-grid'
import { nearestCentroid } from '../quant/kmeans'
import { fitSharedTable, rowTable } from '../quant/shared-lut'
import { codebookBits, type CodebookDtype } from '../quant/vq-codebook'
import type { UniformGridRecord } from '../quant/record'
import type { CompressionMethod, LinearOutcome } from './method'
import { ParamReader } from './params'

export type SqueezeLlmSensitivity = 'fisher' | 'hessian'

export interface SqueezeLlmParams {
  bits: number
  sensitivity: SqueezeLlmSensitivity
  outlierFraction: number
  sensitiveFraction: number
  /** Consecutive output rows sharing one lookup table (1: a table per row; 0: one for the tensor). */
  lutRows: number
  /** How table entries are stored. */
  lutDtype: CodebookDtype
  /** Set by prepareStep with sensitivity fisher: this tensor's Fisher diagonal, [rows, cols]. */
  fisher?: Float32Array
  /** Set by prepareStep when the Fisher could not be computed: why the Hessian diagonal stands in. */
  fallback?: string
}

/** Bits of one sparse weight as counted: an fp16 value and a 32-bit flat index. */
export const SPARSE_ENTRY_BITS = 16 + 32
/** Bits of one centroid in the authors' lookup tables (fp16). */
export const CENTROID_BITS = 16
/** Bits of a row's scale of a shared table (fp16). */
export const ROW_SCALE_BITS = 16
/** Bits of a CSR column index, row pointer or the nnz scalar in the authors' file (int32). */
const FILE_INDEX_BITS = 32
/** Bits of a sparse value in the authors' file (f32). */
const FILE_VALUE_BITS = 32

const LUT_DTYPES: readonly CodebookDtype[] = ['f16', 'int8']

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
  intParam(
    'lut_rows',
    1,
    0,
    1 << 20,
    'Consecutive output rows sharing one lookup table, each row scaling it by its own fp16 scale (1 = a table per row, the paper; 0 = one table per tensor)',
  ),
  choiceParam('lut_dtype', 'f16', LUT_DTYPES, 'Table entries: fp16, or int8 with one fp16 scale per table'),
]

/** What SqueezeLLM stores for one Linear (the fake-quantized weight aside). */
export interface LutQuantization {
  bits: number
  rows: number
  cols: number
  /** Consecutive rows sharing a table, resolved (≥ 1): row r uses table ⌊r / lutRows⌋. */
  lutRows: number
  /** [⌈rows / lutRows⌉, 2^bits]: the tables as stored, ascending (normalized when row-scaled). */
  tables: Float32Array
  /** [rows]: each row's fp16 scale of its shared table; null for per-row tables. */
  rowScales: Float32Array | null
  /** [rows, 2^bits]: each row's decoded table, ascending fp16 values (what the authors' file holds). */
  lut: Float32Array
  /** [rows·cols]: each weight's centroid; a sparse weight's is its table's centroid nearest to 0. */
  codes: Uint8Array
  /** Ascending flat indices (r·cols + c) of the weights kept in fp16. */
  sparseIndex: Int32Array
}

/** How the tables of a SqueezeLLM result are laid out and stored. */
export interface LutLayout {
  /** As the parameter: 0 means all rows. */
  lutRows: number
  lutDtype: CodebookDtype
}

/** The paper's layout: an fp16 table per row. */
export const PER_ROW_F16: LutLayout = { lutRows: 1, lutDtype: 'f16' }

/** Rows per table of a tensor with `rows` rows (lut_rows 0: all of them). */
export function rowsPerTable(lutRows: number, rows: number): number {
  return lutRows === 0 ? Math.max(1, rows) : Math.min(lutRows, Math.max(1, rows))
}

/** Storage bits per weight of a SqueezeLLM result with `sparse` weights kept, as Whittle counts it. */
export function squeezeLlmBitsPerWeight(
  bits: number,
  rows: number,
  cols: number,
  sparse: number,
  layout: LutLayout = PER_ROW_F16,
): number {
  const perTable = rowsPerTable(layout.lutRows, rows)
  const tables = Math.ceil(rows / perTable)
  const scales = perTable > 1 ? rows * ROW_SCALE_BITS : 0
  const side = tables * codebookBits(2 ** bits, 1, layout.lutDtype) + scales + sparse * SPARSE_ENTRY_BITS
  return bits + side / (rows * cols)
}

/**
 * Bits per weight of one Linear in the authors' checkpoint (export/squeezellm-export.ts): codes, an fp16
 * table per row whatever Whittle shares, and when some weight is sparse a CSR part (int32 row pointers,
 * an int32 column and an f32 value per sparse weight, the int32 nnz).
 */
export function squeezeLlmFileBitsPerWeight(bits: number, rows: number, cols: number, sparse: number): number {
  const csr = sparse > 0 ? (rows + 2) * FILE_INDEX_BITS + sparse * (FILE_INDEX_BITS + FILE_VALUE_BITS) : 0
  return bits + (rows * 2 ** bits * CENTROID_BITS + csr) / (rows * cols)
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
  p: Pick<SqueezeLlmParams, 'bits' | 'outlierFraction' | 'sensitiveFraction'> & Partial<LutLayout>,
): LutQuantization {
  if (W.length !== rows * cols || sensitivity.length !== rows * cols)
    throw new WhittleError(
      'validation',
      null,
      `squeezellm: ${W.length} weights / ${sensitivity.length} sensitivities for ${rows}×${cols}`,
    )
  const layout = { ...PER_ROW_F16, ...p }
  if (!Number.isInteger(layout.lutRows) || layout.lutRows < 0)
    throw new WhittleError('validation', null, `squeezellm: lut_rows must be an integer ≥ 0 (got ${layout.lutRows})`)
  const lutRows = rowsPerTable(layout.lutRows, rows)
  const k = 2 ** p.bits
  const sparseIndex = sparseSelection(W, sensitivity, p.outlierFraction, p.sensitiveFraction)
  const sparse = new Uint8Array(W.length)
  for (const i of sparseIndex) sparse[i] = 1
  const scaled = lutRows > 1
  const tables = Math.ceil(rows / lutRows)
  const shared = new Float32Array(tables * k)
  const rowScales = scaled ? new Float32Array(rows) : null
  const lut = new Float32Array(rows * k)
  const codes = new Uint8Array(W.length)
  for (let t = 0; t < tables; t++) {
    const first = t * lutRows,
      end = Math.min(rows, first + lutRows)
    const run = { W, cols, first, end, dense: (i: number) => !sparse[i], sensitivity }
    const fit = fitSharedTable(run, k, layout.lutDtype, scaled)
    shared.set(fit.table, t * k)
    if (rowScales) rowScales.set(fit.scales!, first)
    for (let r = first; r < end; r++) {
      const table = rowTable(fit, r - first)
      lut.set(table, r * k)
      const zeroCode = nearestCentroid(table, 0)
      for (let i = r * cols; i < (r + 1) * cols; i++) {
        if (sparse[i]) {
          codes[i] = zeroCode
          W[i] = roundToF16(W[i]) + 0
        } else {
          codes[i] = nearestCentroid(table, W[i])
          W[i] = table[codes[i]]
        }
      }
    }
  }
  return { bits: p.bits, rows, cols, lutRows, tables: shared, rowScales, lut, codes, sparseIndex }
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
    zeros: new Uint8Array(0),
    gIdx: new Int32Array(0),
    encoding: 'lut',
    lut: q.lut,
  }
}

function squeezeLlmFormat(p: SqueezeLlmParams): string {
  const sparse = +((p.outlierFraction + p.sensitiveFraction) * 100).toFixed(3)
  const shared = p.lutRows === 1 ? '' : p.lutRows === 0 ? ' per tensor' : ` per ${p.lutRows} rows`
  const dtype = p.lutDtype === 'f16' ? '' : ` ${p.lutDtype}`
  return `lut${shared}${dtype} w${p.bits} + ${sparse}% fp16`
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
    'SqueezeLLM: per-row lookup tables of 2^bits centroids by Fisher-weighted k-means (or tables shared among rows, scaled per row), 0.45% outliers and sensitive weights kept in fp16',
  params: SQUEEZELLM_PARAMS,
  needs: { calibration: true, hessian: false },
  parseParams(raw, where) {
    const r = new ParamReader(raw, where, SQUEEZELLM_PARAMS)
    const p: SqueezeLlmParams = {
      bits: r.int('bits'),
      sensitivity: r.oneOf<SqueezeLlmSensitivity>('sensitivity'),
      outlierFraction: r.num('outlier_fraction'),
      sensitiveFraction: r.num('sensitive_fraction'),
      lutRows: r.int('lut_rows'),
      lutDtype: r.oneOf<CodebookDtype>('lut_dtype'),
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
      p,
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
      const notes = note ? [note] : []
      // The authors' file holds a table per row in fp16: say what it costs there when Whittle stores less.
      if (p.lutRows !== 1 || p.lutDtype !== 'f16')
        notes.push(
          `the squeezellm export expands the tables to fp16 per row: ${squeezeLlmFileBitsPerWeight(p.bits, l.rows, l.cols, sparse).toFixed(3)} bits per weight in that file`,
        )
      const k = 2 ** p.bits
      out.push({
        name: l.name,
        bitsPerWeight: squeezeLlmBitsPerWeight(p.bits, l.rows, l.cols, sparse, p),
        format: squeezeLlmFormat(p),
        ...(notes.length ? { note: notes.join('; ') } : {}),
        record: lutRecord(q),
        grid: perRowCentroidGrid(q.lut, l.rows, k, sparse / (l.rows * l.cols)),
      })
    }
    return out
  },
}
