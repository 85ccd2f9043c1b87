// The integer side of a uniformly quantized Linear (RTN, GPTQ), as the quantizer decided it.
//
// Per (group, output row) a scale and an integer zero, and per weight an unsigned code in
// [0, 2^bits − 1], so that W[r, c] = f32(scale[g, r] · (q[r, c] − z[g, r])) with g = gIdx[c].
//
// Methods emit a UniformGridRecord (scales, zeros, grouping; no codes): codes for a whole model would
// cost one byte per weight for as long as the run lasts. Exporters derive the codes from the fake-quant
// weights themselves (codesFromWeights), which is exact because every weight is scale · integer in f32,
// and they check that exactness weight by weight: a weight a later step changed fails loudly.

import { WhittleError } from '../../errors'
import type { QuantGrid } from '../../numerics/minmax-grid'
import { roundHalfEven } from '../../numerics/rounding'

export interface UniformGridRecord {
  bits: number
  /** Inputs per group; ≤ 0 (or ≥ cols) means one group per output row. */
  groupSize: number
  sym: boolean
  /** Output features (rows of the [out, in] weight). */
  rows: number
  /** Input features. */
  cols: number
  /** [groups, rows]; fp16-representable when the method quantized with scale_dtype f16. */
  scales: Float32Array
  /** [groups, rows], integers in [0, 2^bits − 1]: bits ≤ 8, so one byte each (a 7B layer's take 1.6 MB, not 6.3). */
  zeros: Uint8Array
  /** [cols]: the group of each input column (c / groupSize unless act-order regrouped them). */
  gIdx: Int32Array
  /**
   * Absent: the integer grid above. 'fp8-e4m3' (the fp8 method): no integer codes; each weight is
   * f32(scale[r] · e4m3(w / scale[r])) with zeros 0, which only the float-quantized export stores.
   * 'lut' (squeezellm): no uniform grid (scales, zeros and gIdx are empty); each weight is an entry
   * of its row's table in `lut`, or an fp16 value of the sparse part; only the squeezellm export stores it.
   */
  encoding?: 'fp8-e4m3' | 'lut'
  /** encoding 'lut': [rows, 2^bits], each row's centroids in ascending order (fp16 values). */
  lut?: Float32Array
}

/** Where the weights of a record with an encoding can be exported packed. */
const ENCODING_EXPORT: Record<NonNullable<UniformGridRecord['encoding']>, string> = {
  'fp8-e4m3': 'compressed-tensors-w8a8',
  lut: 'squeezellm',
}

export interface UniformQuantRecord extends UniformGridRecord {
  /** [rows, cols] row-major: the unsigned code of each weight. */
  codes: Uint8Array
}

/** Collects the grids a quantizer uses, group by group, into a record. */
export class GridRecorder {
  readonly record: UniformGridRecord

  constructor(
    rows: number,
    cols: number,
    groups: number,
    p: { bits: number; groupSize: number; sym: boolean },
    gIdx: Int32Array,
  ) {
    this.record = {
      bits: p.bits,
      groupSize: p.groupSize,
      sym: p.sym,
      rows,
      cols,
      scales: new Float32Array(groups * rows),
      zeros: new Uint8Array(groups * rows),
      gIdx,
    }
  }

  set(group: number, row: number, grid: QuantGrid): void {
    const at = group * this.record.rows + row
    // A byte would wrap a zero outside 0…255 without a word; a grid's zero is a code, so one is a bug.
    if (!(Number.isInteger(grid.zero) && grid.zero >= 0 && grid.zero <= 255))
      throw new WhittleError('validation', null, `a quantization grid's zero ${grid.zero} is not a code in 0…255`)
    this.record.scales[at] = grid.scale
    this.record.zeros[at] = grid.zero
  }
}

/**
 * The record of a symmetric int8 grid with one scale per output row (SmoothQuant, LLM.int8 without
 * outliers): W = scale · k with k in [−127, 127], i.e. code k + 128 and zero 128.
 */
export function int8ChannelRecord(scales: Float32Array, rows: number, cols: number): UniformGridRecord {
  return {
    bits: 8,
    groupSize: -1,
    sym: true,
    rows,
    cols,
    scales,
    zeros: new Uint8Array(rows).fill(128),
    gIdx: new Int32Array(cols),
  }
}

/** The trivial grouping c / groupSize (all zeros per channel). */
export function sequentialGIdx(cols: number, groupSize: number): Int32Array {
  const g = groupSize > 0 && groupSize < cols ? groupSize : cols
  return Int32Array.from({ length: cols }, (_, c) => Math.floor(c / g))
}

/** Refuses a record whose weights have no integer grid (fp8, lookup tables), naming the export that holds them. */
export function requireIntegerGrid(rec: UniformGridRecord, where: string): void {
  if (rec.encoding)
    throw new WhittleError(
      'unsupported',
      null,
      `${where}: ${rec.encoding} weights have no integer codes; export them as ${ENCODING_EXPORT[rec.encoding]}`,
    )
}

/**
 * The codes of W under a record's grids, checked to reproduce W bit for bit; `where` names the tensor.
 * Fails when W is not the record's fake-quant weight (e.g. a later step pruned or rescaled it).
 */
export function codesFromWeights(rec: UniformGridRecord, W: Float32Array, where: string): UniformQuantRecord {
  const { rows, cols } = rec
  requireIntegerGrid(rec, where)
  if (W.length !== rows * cols)
    throw new WhittleError(
      'validation',
      null,
      `${where}: ${W.length} weights for a ${rows}×${cols} quantization record`,
    )
  const maxq = 2 ** rec.bits - 1
  const codes = new Uint8Array(rows * cols)
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const at = rec.gIdx[c] * rows + r
      const s = rec.scales[at],
        z = rec.zeros[at]
      const w = W[r * cols + c]
      const q = Math.min(maxq, Math.max(0, roundHalfEven(Math.fround(w / s)) + z))
      if (Math.fround(s * (q - z)) !== w) {
        throw new WhittleError(
          'validation',
          null,
          `${where}: weight [${r}, ${c}] = ${w} is not on its quantization grid (scale ${s}, zero ${z}); a later step changed it, so it cannot be packed`,
        )
      }
      codes[r * cols + c] = q
    }
  }
  return { ...rec, codes }
}

/** W[r, c] = scale · (q − z), rounded to f32 once, as the quantizers compute their fake-quant weights. */
export function dequantizeRecord(r: UniformQuantRecord): Float32Array {
  const out = new Float32Array(r.rows * r.cols)
  for (let row = 0; row < r.rows; row++) {
    for (let c = 0; c < r.cols; c++) {
      const at = r.gIdx[c] * r.rows + row
      out[row * r.cols + c] = Math.fround(r.scales[at] * (r.codes[row * r.cols + c] - r.zeros[at]))
    }
  }
  return out
}

export function isSequentialGIdx(gIdx: Int32Array, groupSize: number): boolean {
  const want = sequentialGIdx(gIdx.length, groupSize)
  return want.every((v, i) => v === gIdx[i])
}
