// GGUF quantization with and without an importance matrix (issue #13: "quantization with an imatrix must
// run at least as fast as without one"): every type llama-quantize weighs by an imatrix, on the block
// Linears of the first decoder layers of the synthetic TinyLlama-1.1B shape (BF16; BENCH_IMATRIX_LAYERS,
// default 1, ≈ 44M weights a layer), streamed from the file as the GGUF export streams them (read, decode,
// quantize, decode back and compare) on 2 workers. The importances are deterministic and uneven per column.
// Each type runs plain, weighted, plain, weighted; the best of the two runs of each is reported, as wall
// time and as the process's CPU time (workers included), which other load on the machine disturbs less.
// BENCH_IMATRIX_TYPES (comma-separated, e.g. Q4_0,Q4_1) limits the types; BENCH_IMATRIX_RUNS (default 2)
// sets the runs of each.

import { quantizeEntryGgufParallel } from '../../src-main/engine/compress/gguf-types/quantize-tensor-parallel'
import { isBlockLinear } from '../../src-main/engine/compress/recipe/targets'
import { loadModel } from '../../src-main/engine/model/loaded-model'
import { WorkerPool } from '../../src-main/engine/pool/worker-pool'
import { IMATRIX_TYPES } from '../../kernels/reference/ggml-quantize-imatrix'
import type { BlockType } from '../../kernels/reference/ggml-dequant-all'
import { syntheticModel } from '../models'
import { emit, peakRss } from '../rows'

const LAYERS = Number(process.env.BENCH_IMATRIX_LAYERS ?? 1)
const RUNS = Number(process.env.BENCH_IMATRIX_RUNS ?? 2)
const onlyTypes = process.env.BENCH_IMATRIX_TYPES?.split(',').map((t) => t.trim().toUpperCase())
const types = IMATRIX_TYPES.filter((t) => !onlyTypes || onlyTypes.includes(t))
const dir = await syntheticModel('tinyllama-1.1b', 'BF16')
const model = await loadModel(dir)
const linears = model.tensors.filter((t) => isBlockLinear(t) && t.layer !== null && t.layer < LAYERS)
const weights = linears.reduce((a, t) => a + t.shape[0] * t.shape[1], 0)
const importances = new Map(
  linears.map((t) => [t.name, Float32Array.from({ length: t.shape[1] }, (_, c) => 1 + ((c * 7919) % 97) / 10)]),
)
const pool = await WorkerPool.create({ threads: 2 })

interface Timing {
  wall: number
  /** CPU seconds of the whole process (main thread and workers): steadier than wall time on a shared machine. */
  cpu: number
}

async function seconds(type: BlockType, weighted: boolean): Promise<Timing> {
  const t0 = performance.now()
  const c0 = process.cpuUsage()
  for (const t of linears) {
    const importance = weighted ? importances.get(t.name)! : null
    await quantizeEntryGgufParallel(pool, model.entry(t.name), type, { importance })
  }
  const c = process.cpuUsage(c0)
  return { wall: (performance.now() - t0) / 1000, cpu: (c.user + c.system) / 1e6 }
}

const best = (a: Timing, b: Timing): Timing => ({ wall: Math.min(a.wall, b.wall), cpu: Math.min(a.cpu, b.cpu) })

try {
  for (const type of types) {
    let plain: Timing = { wall: Infinity, cpu: Infinity }
    let withImatrix: Timing = { wall: Infinity, cpu: Infinity }
    for (let run = 0; run < RUNS; run++) {
      plain = best(plain, await seconds(type, false))
      withImatrix = best(withImatrix, await seconds(type, true))
    }
    emit({
      case: `GGUF quantize with / without imatrix, TinyLlama-1.1B shape, ${LAYERS} layer(s) (${(weights / 1e6).toFixed(0)}M weights), 2 workers`,
      variant: type,
      measure: 'wall s with / without (CPU s with / without)',
      value: `${withImatrix.wall.toFixed(2)} / ${plain.wall.toFixed(2)} (${withImatrix.cpu.toFixed(2)} / ${plain.cpu.toFixed(2)})`,
      ratio: `${(withImatrix.wall / plain.wall).toFixed(2)}x (CPU ${(withImatrix.cpu / plain.cpu).toFixed(2)}x)`,
      peakRss: peakRss(),
    })
  }
} finally {
  await pool.close()
}
