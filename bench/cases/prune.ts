// Pruning cost: wall time and peak RSS of magnitude, Wanda and SparseGPT at 50% — on stories260K over
// all 35 Linears (128 × 256 calibration), and on one decoder layer (layer 0, all 7 Linears) of the
// synthetic TinyLlama-1.1B shape with 16 × 256 calibration tokens. Each measurement runs in its own child
// process so its peak RSS is its own.

import { spawnSync } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { PythonRandom } from '../../src-main/engine/calibration/python-random'
import { calibrationWindows } from '../../src-main/engine/calibration/windows'
import { runRecipe } from '../../src-main/engine/compress/pipeline'
import { validateRecipe } from '../../src-main/engine/compress/recipe/recipe'
import { readTextFile, tokenizeForEval } from '../../src-main/engine/eval/tokenize-text'
import { loadModel } from '../../src-main/engine/model/loaded-model'
import { WorkerPool } from '../../src-main/engine/pool/worker-pool'
import { syntheticModel } from '../models'
import { emit, peakRss } from '../rows'

const METHODS = ['magnitude', 'wanda', 'sparsegpt'] as const
const self = fileURLToPath(import.meta.url)
const root = path.resolve(path.dirname(self), '../..')
const [where, method] = process.argv.slice(2)

async function measure(model: 'small' | 'layer', m: string): Promise<void> {
  const pool = await WorkerPool.create({ threads: 2 })
  let windows: Int32Array[]
  let loaded
  let targets: { include: string[]; exclude: string[] } = { include: [], exclude: [] }
  if (model === 'small') {
    loaded = await loadModel(path.join(root, 'resources/demo/stories260K'))
    const ids = await tokenizeForEval(
      loaded.files,
      await readTextFile(path.join(root, 'resources/text/tinystories_calib.txt')),
    )
    windows = calibrationWindows(ids, { samples: 128, seqlen: 256, seed: 0 })
  } else {
    loaded = await loadModel(await syntheticModel('tinyllama-1.1b', 'BF16'))
    const rng = new PythonRandom(0)
    windows = Array.from({ length: 16 }, () => Int32Array.from({ length: 256 }, () => rng.randint(0, 31999)))
    targets = { include: ['layers\\.0\\.'], exclude: [] }
  }
  const t0 = performance.now()
  const r = await runRecipe(
    pool,
    loaded,
    validateRecipe({ steps: [{ method: m, params: { sparsity: 0.5 }, targets }] }),
    { windows },
  )
  const seconds = (performance.now() - t0) / 1000
  const measured = r.tensors.filter((t) => t.relOutputError !== null)
  const outErr = measured.length ? measured.reduce((a, t) => a + t.relOutputError!, 0) / measured.length : null
  emit({
    case:
      model === 'small'
        ? 'Prune 50%, stories260K, all Linears, 128 × 256 calibration'
        : 'Prune 50%, TinyLlama-1.1B shape layer 0, 16 × 256 calibration',
    variant: m,
    measure: 'wall time (capture included)',
    value: `${seconds.toFixed(model === 'small' ? 2 : 1)} s`,
    ratio:
      outErr === null
        ? `mean rel. weight error ${(r.tensors.reduce((a, t) => a + t.relWeightError, 0) / r.tensors.length).toFixed(4)}`
        : `mean rel. output error ${outErr.toFixed(4)}`,
    peakRss: peakRss(),
  })
  await pool.close()
}

if (where && method) {
  await measure(where as 'small' | 'layer', method)
} else {
  for (const w of ['small', 'layer']) {
    for (const m of METHODS) {
      const r = spawnSync(process.execPath, ['--import', 'tsx', self, w, m], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'inherit'],
      })
      if (r.status !== 0) throw new Error(`prune bench ${w} ${m} failed (${r.status})`)
      process.stdout.write(r.stdout)
    }
  }
}
