// Whole-model scan of a synthetic TinyLlama-1.1B-shape model in BF16: wall time, GB/s and peak RSS.
// Peak RSS staying far below the model's 2.2 GB is the point: tensors stream through fixed slots.
// CPU seconds (this process, workers included) say more than wall time on a shared machine: on an idle
// one, wall time approaches CPU seconds / (threads + the reading thread's share).

import { scanModel } from '../../src-main/engine/inspect/model-scan'
import { loadModel, tensorsByLayer } from '../../src-main/engine/model/loaded-model'
import { WorkerPool } from '../../src-main/engine/pool/worker-pool'
import { syntheticModel } from '../models'
import { emit, gbps, peakRss } from '../rows'

const dir = await syntheticModel('tinyllama-1.1b', 'BF16')
for (const threads of [1, 2]) {
  const model = await loadModel(dir)
  const pool = await WorkerPool.create({ threads })
  // As in the app, whose pool is up long before a scan: one empty run per worker waits for every worker
  // to have started (threads and kernel instances take about 0.1 s), so that start-up is not timed.
  await Promise.all(Array.from({ length: threads }, () => pool.run([])))
  const cpuBefore = process.cpuUsage()
  const scan = await scanModel(pool, model.id, tensorsByLayer(model))
  const cpu = process.cpuUsage(cpuBefore)
  await pool.close()
  emit({
    case: 'model scan, TinyLlama-1.1B shape, BF16',
    variant: `WASM SIMD, ${threads} worker${threads > 1 ? 's' : ''}`,
    measure: 'wall / throughput',
    value: `${scan.seconds.toFixed(2)} s / ${gbps(scan.bytes, scan.seconds)}`,
    ratio: `${(scan.bytes / 1e9).toFixed(2)} GB, ${model.tensors.length} tensors, ${((cpu.user + cpu.system) / 1e6).toFixed(2)} CPU-s`,
    peakRss: peakRss(),
  })
}
