// The second loss of re-quantizing an already quantized GGUF tensor (--allow-requantize): how far the
// values written now lie from the values the source's blocks decoded to. The source's own loss against its
// original F32 weights cannot be known from the file (they are gone), so the report gives this added error
// per tensor and says that the total is the source's rounding plus this one.

import type { TensorEntry } from '../../formats/types'
import { decodeToF32 } from '../../formats/read'
import type { DType } from '../../formats/types'
import { relativeError } from '../../compress/measures'
import { decodeTensorF32 } from '../../pool/decode-tensor'
import type { WorkerPool } from '../../pool/worker-pool'
import { hfToGgufRows } from '../../arch/rope-permute'

/** The part of a planned export tensor the measure needs: its source and its row geometry. */
export interface RequantizedSource {
  entry: TensorEntry
  rows: number
  cols: number
  /** q/k heads the rows were permuted by on the way out (0 for none). */
  permuteHeads: number
}

/**
 * ‖written − source‖_F / ‖source‖_F, where `source` is what the source tensor's blocks decode to and
 * `written` what `data` (in `type`) decodes to.
 */
export async function requantizeError(
  pool: WorkerPool,
  source: RequantizedSource,
  data: Uint8Array,
  type: string,
): Promise<number> {
  let before = await decodeTensorF32(pool, source.entry)
  if (source.permuteHeads > 0) before = hfToGgufRows(before, source.rows, source.cols, source.permuteHeads)
  const after = new Float32Array(source.rows * source.cols)
  decodeToF32(type as DType, data, after.length, after)
  return relativeError(before, after)
}

/** The sentence the re-quantization warning ends with: the added error over the re-quantized tensors. */
export function requantizeLossNote(errors: readonly number[]): string {
  if (errors.length === 0) return ''
  const mean = errors.reduce((a, b) => a + b, 0) / errors.length
  const worst = Math.max(...errors)
  const pct = (x: number): string => `${(x * 100).toPrecision(3)}%`
  return `; this second rounding adds a relative weight error of ${pct(mean)} on average (worst ${pct(worst)}) on top of the source's own, per tensor in the report (requantizeError)`
}
