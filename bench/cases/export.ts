// Export throughput on the synthetic TinyLlama-1.1B shape (BF16, 2.2 GB): GGUF Q8_0, Q4_0 and Q4_K_M
// straight from the checkpoint (what llama-quantize does), and GPTQ 4-bit g128 packing of an RTN-quantized
// model (the quantization itself is not timed). GB/s = source bytes / seconds, verification included.
// 'gguf Q4_K_M imatrix' is the same Q4_K_M export with an importance matrix (a synthetic one, every block
// Linear weighted), which llama.cpp's issue asks to run at least as fast as without.
// Each export runs in its own child process so its peak RSS is its own.

import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { compressModel } from '../../src-main/engine/compress/compress-model'
import { validateRecipe } from '../../src-main/engine/compress/recipe/recipe'
import { exportModel } from '../../src-main/engine/export/export-model'
import { ggufLlamaName } from '../../src-main/engine/export/gguf/names'
import type { Imatrix, ImatrixSource } from '../../src-main/engine/formats/imatrix-data'
import type { LoadedModel } from '../../src-main/engine/model/loaded-model'
import { loadModel } from '../../src-main/engine/model/loaded-model'
import { WorkerPool } from '../../src-main/engine/pool/worker-pool'
import { MODELS_DIR, syntheticModel } from '../models'
import { emit, gbps, peakRss } from '../rows'

const CASE = 'Export, TinyLlama-1.1B shape (BF16, 2.2 GB)'
const VARIANTS = ['gguf Q8_0', 'gguf Q4_0', 'gguf Q4_K_M', 'gguf Q4_K_M imatrix', 'gptq w4 g128'] as const
const self = fileURLToPath(import.meta.url)
const variant = process.argv[2]

/** An importance matrix for every block Linear of `model`: uneven, deterministic per-column importances. */
function syntheticImatrix(model: LoadedModel): ImatrixSource {
  const entries: Imatrix['entries'] = new Map()
  for (const t of model.files.tensors) {
    const place = model.arch.places[t.name]
    const name = place && place.layer !== null && t.shape.length === 2 ? ggufLlamaName(place) : null
    if (!name) continue
    const columns = t.shape[1]
    entries.set(name, {
      columns,
      sums: Float32Array.from({ length: columns }, (_, c) => 1000 * (1 + ((c * 7919) % 97) / 10)),
      counts: Float64Array.of(1000),
    })
  }
  return {
    imatrix: { entries, countUnit: 'tokens', chunkCount: 1, chunkSize: 1000, datasets: ['synthetic'] },
    file: null,
  }
}

async function measure(v: string): Promise<void> {
  const src = await syntheticModel('tinyllama-1.1b', 'BF16')
  const model = await loadModel(src)
  const bytes = model.files.tensors.reduce((a, t) => a + t.byteLength, 0)
  const pool = await WorkerPool.create({ threads: 2 })
  const tmp = mkdtempSync(path.join(MODELS_DIR, 'export-'))
  try {
    const [format, type, withImatrix] = v.split(' ')
    let seconds: number
    if (format === 'gguf') {
      const imatrix = withImatrix ? syntheticImatrix(model) : null
      const t0 = performance.now()
      await exportModel(pool, model, path.join(tmp, 'out'), { format: 'gguf', ggufType: type, imatrix })
      seconds = (performance.now() - t0) / 1000
    } else {
      const recipe = validateRecipe({ steps: [{ method: 'rtn', params: { bits: 4, group_size: 128 } }] })
      const r = await compressModel(pool, model, recipe, { recipeDir: tmp, defaultCalibrationText: null })
      const t0 = performance.now()
      await exportModel(pool, r.view, path.join(tmp, 'out'), {
        format: 'gptq',
        compression: { source: model, report: r.report, records: r.records },
      })
      seconds = (performance.now() - t0) / 1000
      r.view.dispose()
    }
    emit({
      case: CASE,
      variant: v,
      measure: 'throughput (write + verify)',
      value: gbps(bytes, seconds),
      ratio: `${seconds.toFixed(1)} s`,
      peakRss: peakRss(),
    })
  } finally {
    rmSync(tmp, { recursive: true, force: true })
    await pool.close()
  }
}

if (variant) await measure(variant)
else {
  for (const v of VARIANTS) {
    const r = spawnSync(process.execPath, ['--import', 'tsx', self, v], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    if (r.status !== 0) throw new Error(`export bench ${v} failed (${r.status})`)
    process.stdout.write(r.stdout)
  }
}
