// The whole-model scan: one streamed pass over every tensor, producing per (layer, role) the numbers that say
// where a model's difficult values live: absmax/std, kurtosis and how many input channels are outliers.

import type { ScanCell, ScanResult, TensorInfo } from '../../contract/api'
import type { TensorEntry } from '../formats/types'
import type { WorkerPool } from '../pool/worker-pool'
import { finishStats } from '../../../kernels/reference/stats'
import { DEFAULT_OUTLIER_K, outlierIndices, outlierScore } from './channel-profile'
import { streamTensors } from './tensor-stream'

export interface ScanOptions {
  k?: number
  signal?: AbortSignal
  onProgress?: (fraction: number, message: string) => void
}

export async function scanModel(
  pool: WorkerPool,
  modelId: string,
  tensors: { entry: TensorEntry; info: TensorInfo }[],
  options: ScanOptions = {},
): Promise<ScanResult> {
  const k = options.k ?? DEFAULT_OUTLIER_K
  const started = performance.now()
  const totalBytes = tensors.reduce((a, t) => a + t.entry.byteLength, 0)
  const cells: ScanCell[] = []
  // Bytes of the tensors before each one, for the progress fraction.
  const bytesBefore: number[] = []
  for (let i = 0, sum = 0; i < tensors.length; sum += tensors[i].entry.byteLength, i++) bytesBefore.push(sum)
  // One stream over every tensor, so the workers never wait at a tensor boundary.
  await streamTensors(
    pool,
    tensors.map((t) => t.entry),
    { moments: true, channels: true },
    (i, r) => {
      const { info } = tensors[i]
      const s = finishStats(r.moments)
      const cols = r.colAbsmax ?? null
      cells.push({
        layer: info.layer,
        role: info.role,
        name: info.name,
        absmax: s.absmax,
        std: s.std,
        kurtosis: s.kurtosis,
        outlierChannels: cols ? outlierIndices(cols, k).length : 0,
        channels: cols ? cols.length : 0,
        outlierScore: outlierScore(cols, s.absmax, s.std),
      })
    },
    {
      signal: options.signal,
      onBytes: (i, done) => {
        const { info } = tensors[i]
        const where = info.layer === null ? info.name : `layer ${info.layer} ${info.role}`
        options.onProgress?.(
          totalBytes ? (bytesBefore[i] + done) / totalBytes : 1,
          `tensor ${i + 1}/${tensors.length}: ${where}`,
        )
      },
    },
  )
  return { modelId, k, cells, seconds: (performance.now() - started) / 1000, bytes: totalBytes }
}
