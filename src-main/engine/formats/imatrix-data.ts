// An importance matrix (llama.cpp's imatrix) in memory, whichever file it came from: per weight tensor, the
// per-input-column sums of x² and how many inputs they summed, and the importances llama-quantize derives
// from them. The two file formats live in imatrix-gguf.ts and imatrix-dat.ts; imatrix-file.ts picks one.

import { WhittleError } from '../errors'

/**
 * What a count counts. The GGUF imatrix (and Whittle's own calibration) count tokens; the legacy .dat
 * stores per-column means multiplied by a number of calls (ceil(tokens / chunk size)), so its "sums" are
 * mean × calls and its counts are calls. llama-quantize divides either by its count, so both give the mean.
 */
export type ImatrixCountUnit = 'tokens' | 'calls'

export interface ImatrixEntry {
  /** Input columns of the weight (ggml ne[0]). */
  columns: number
  /** Σx² per column, [matrices × columns] (one matrix for a dense weight, one per expert for a merged MoE weight). */
  sums: Float32Array
  /** Per matrix: what `sums` was summed over (see ImatrixCountUnit). */
  counts: Float64Array
}

export interface Imatrix {
  /** Keyed by the weight's GGUF tensor name (blk.0.attn_q.weight). */
  entries: Map<string, ImatrixEntry>
  countUnit: ImatrixCountUnit
  /** Chunks of calibration text it was computed over. */
  chunkCount: number
  /** Tokens per chunk (the -c of llama-imatrix); null where the file does not say (legacy .dat). */
  chunkSize: number | null
  /** The calibration text(s), as recorded by whoever computed it. */
  datasets: string[]
}

/** Where the imatrix came from, for messages: the file, or null for one computed in memory. */
export interface ImatrixSource {
  imatrix: Imatrix
  file: string | null
}

/**
 * The per-column importances llama-quantize uses for weight `name` of `columns` input columns (and
 * `matrices` experts), or null when the imatrix has no entry for it (the weight is then quantized
 * without importances, as llama-quantize does for token_embd and output). As llama-quantize: f32
 * sums / count; a matrix whose count is zero (an expert calibration never reached) gets all ones from a
 * GGUF imatrix and the stored values unchanged from a .dat. A size that does not match is refused, as
 * llama-quantize refuses it, naming the file.
 */
export function importanceFor(source: ImatrixSource, name: string, columns: number, matrices = 1): Float32Array | null {
  const e = source.imatrix.entries.get(name)
  if (!e) return null
  // A .dat has one count per entry whatever the number of experts; its values are then one flat row.
  const broadcast = e.counts.length === 1 && e.sums.length === matrices * columns
  if (!broadcast && (e.columns !== columns || e.counts.length !== matrices)) {
    throw new WhittleError(
      'validation',
      source.file,
      `the importance matrix of ${name} is ${e.counts.length} × ${e.columns}, but the weight needs ${matrices} × ${columns}`,
    )
  }
  const out = new Float32Array(e.sums.length)
  for (let m = 0; m < matrices; m++) {
    const count = Math.fround(e.counts[broadcast ? 0 : m])
    for (let j = m * columns; j < (m + 1) * columns; j++) {
      if (count > 0) out[j] = Math.fround(e.sums[j] / count)
      else out[j] = source.imatrix.countUnit === 'tokens' ? 1 : e.sums[j]
    }
  }
  return out
}

/** Entry names in llama.cpp's deterministic order (std::sort of the names: byte order). */
export function sortedEntryNames(imatrix: Imatrix): string[] {
  return [...imatrix.entries.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
}

/** Checks an in-memory imatrix before writing it, so a file is never written half-valid. */
export function checkImatrix(imatrix: Imatrix, file: string): void {
  if (imatrix.entries.size === 0)
    throw new WhittleError('validation', file, 'the importance matrix has no entries (nothing was collected)')
  for (const [name, e] of imatrix.entries) {
    if (name.length === 0) throw new WhittleError('validation', file, 'an importance-matrix entry has an empty name')
    if (
      !Number.isSafeInteger(e.columns) ||
      e.columns < 1 ||
      e.counts.length < 1 ||
      e.sums.length !== e.columns * e.counts.length
    ) {
      throw new WhittleError(
        'validation',
        file,
        `importance-matrix entry ${name}: ${e.sums.length} sums do not make ${e.counts.length} rows of ${e.columns}`,
      )
    }
  }
}
