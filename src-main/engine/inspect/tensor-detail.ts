// Everything the Tensor view shows for one tensor, in two streamed passes:
// pass 1 gives moments, channel profiles and the |w| grid; pass 2 bins the values over pass 1's range.

import type { TensorDetail, TensorInfo } from '../../contract/api'
import type { TensorEntry } from '../formats/types'
import type { WorkerPool } from '../pool/worker-pool'
import { finishStats } from '../../../kernels/reference/stats'
import { channelProfile, DEFAULT_OUTLIER_K } from './channel-profile'
import { streamTensor } from './tensor-stream'
import { tensorStorage } from './tensor-storage'

export interface TensorDetailOptions {
  bins?: number
  k?: number
  /** Longest side of the down-sampled heatmap. */
  gridSide?: number
  /** Histogram range; default the tensor's own [min, max]. A shared range lets two histograms overlay. */
  range?: [number, number]
  signal?: AbortSignal
  onProgress?: (fraction: number) => void
}

export const MAX_BINS = 4096

export async function inspectTensor(
  pool: WorkerPool,
  entry: TensorEntry,
  info: TensorInfo,
  options: TensorDetailOptions = {},
): Promise<TensorDetail> {
  const bins = Math.max(1, Math.min(MAX_BINS, Math.floor(options.bins ?? 128)))
  const k = options.k ?? DEFAULT_OUTLIER_K
  const side = options.gridSide ?? 96
  const rows = entry.shape.length >= 2 ? entry.shape[0] : 0
  const cols = rows > 0 ? entry.shape.reduce((a, b) => a * b, 1) / rows : 0
  const grid = rows > 0 ? { rows: Math.min(rows, side), cols: Math.min(cols, side) } : undefined

  const first = await streamTensor(
    pool,
    entry,
    { moments: true, channels: true, grid },
    {
      signal: options.signal,
      onBytes: (done, total) => options.onProgress?.(0.5 * (total ? done / total : 1)),
    },
  )
  const stats = finishStats(first.moments)
  let lo = options.range?.[0] ?? (stats.count > 0 ? stats.min : 0)
  let hi = options.range?.[1] ?? (stats.count > 0 ? stats.max : 0)
  if (!(hi > lo)) {
    lo -= 0.5
    hi += 0.5
  }
  const second = await streamTensor(
    pool,
    entry,
    { moments: false, histogram: { lo, hi, bins } },
    {
      signal: options.signal,
      onBytes: (done, total) => options.onProgress?.(0.5 + 0.5 * (total ? done / total : 1)),
    },
  )
  const h = second.histogram!
  const detail: TensorDetail = {
    info,
    stats,
    histogram: { lo, hi, counts: Array.from(h.subarray(0, bins)), below: h[bins], above: h[bins + 1] },
  }
  const m = first.geometry.matrix
  if (m && first.rowAbsmax && first.rowSumsq && first.colAbsmax && first.colSumsq) {
    detail.channels = {
      out: channelProfile('out', first.rowAbsmax, first.rowSumsq, k),
      in: channelProfile('in', first.colAbsmax, first.colSumsq, k),
      k,
    }
  }
  if (m && first.grid && grid) {
    detail.heatmap = { rows: grid.rows, cols: grid.cols, values: Array.from(first.grid), sourceShape: [m.rows, m.cols] }
  }
  const storage = await tensorStorage(entry)
  if (storage) detail.storage = storage
  return detail
}
