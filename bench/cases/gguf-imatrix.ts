// GGUF quantization with and without an importance matrix (issue #13: "quantization with an imatrix must
// run at least as fast as without one"): every type llama-quantize weighs by an imatrix, on the block
// Linears of the first decoder layers of the synthetic TinyLlama-1.1B shape (BF16; BENCH_IMATRIX_LAYERS,
// default 1, ≈ 44M weights a layer), streamed from the file as the GGUF export streams them (read, decode,
// quantize, decode back and compare) on 2 workers. The importances are deterministic and uneven per column.
// Each type runs plain, weighted, plain, weighted; the best of the two runs of each is reported.

import { quantizeEntryGgufParallel } from '../../src-main/engine/compress/gguf-types/quantize-tensor-parallel'
import { isBlockLinear } from '../../src-main/engine/compress/recipe/targets'
import { loadModel } from '../../src-main/engine/model/loaded-model'
import { WorkerPool } from '../../src-main/engine/pool/worker-pool'
import { IMATRIX_TYPES } from '../../kernels/reference/ggml-quantize-imatrix'
import type { BlockType } from '../../kernels/reference/ggml-dequant-all'
import { syntheticModel } from '../models'
import { emit, peakRss } from '../rows'

const LAYERS = Number(process.env.BENCH_IMATRIX_LAYERS ?? 1)
const dir = await syntheticModel('tinyllama-1.1b', 'BF16')
const model = await loadModel(dir)
const linears = model.tensors.filter((t) => isBlockLinear(t) && t.layer !== null && t.layer < LAYERS)
const weights = linears.reduce((a, t) => a + t.shape[0] * t.shape[1], 0)
const importances = new Map(
  linears.map((t) => [t.name, Float32Array.from({ length: t.shape[1] }, (_, c) => 1 + ((c * 7919) % 97) / 10)]),
)
const pool = await WorkerPool.create({ threads: 2 })

async function seconds(type: BlockType, weighted: boolean): Promise<number> {
  const t0 = performance.now()
  for (const t of linears) {
    const importance = weighted ? importances.get(t.name)! : null
    await quantizeEntryGgufParallel(pool, model.entry(t.name), type, { importance })
  }
  return (performance.now() - t0) / 1000
}

try {
  for (const type of IMATRIX_TYPES) {
    let plain = Infinity
    let withImatrix = Infinity
    for (let run = 0; run < 2; run++) {
      plain = Math.min(plain, await seconds(type, false))
      withImatrix = Math.min(withImatrix, await seconds(type, true))
    }
    emit({
      case: `GGUF quantize with / without imatrix, TinyLlama-1.1B shape, ${LAYERS} layer(s) (${(weights / 1e6).toFixed(0)}M weights), 2 workers`,
      variant: type,
      measure: 'seconds with / without',
      value: `${withImatrix.toFixed(2)} s / ${plain.toFixed(2)} s`,
      ratio: `${(withImatrix / plain).toFixed(2)}x`,
      peakRss: peakRss(),
    })
  }
} finally {
  await pool.close()
}
