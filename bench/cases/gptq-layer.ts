// GPTQ w4 g128 on one decoder layer (layer 0, all 7 Linears) of the synthetic TinyLlama-1.1B-shape
// model (BF16), through the real pipeline: calibration capture of 16 × 256 tokens (Hessians on the
// WASM kernels), then Hinv and the per-column quantization with its lazy updates. The Hinv time per
// input group and the GPTQ time per Linear are measured by timing the same calls compressGroup makes.
// Back to back in this one process, per input group: the inverse factor on one worker (the kernels'
// whole-matrix calls, as before #15) and split by rows across the workers (what planHessianAsync does),
// checked to give the same bits.

import { runRecipe } from '../../src-main/engine/compress/pipeline'
import {
  gptq,
  gptqQuantizePlanned,
  gptqQuantizePlannedLoopHere,
  planHessianAsync,
  type GptqParams,
} from '../../src-main/engine/compress/methods/gptq'
import {
  inverseCholeskyUpperOnWorker,
  inverseCholeskyUpperParallel,
} from '../../src-main/engine/compress/linalg/kernels'
import type { LinearOutcome } from '../../src-main/engine/compress/methods/method'
import { uniformBitsPerWeight } from '../../src-main/engine/compress/quant/grouping'
import { validateRecipe } from '../../src-main/engine/compress/recipe/recipe'
import { PythonRandom } from '../../src-main/engine/calibration/python-random'
import { loadModel } from '../../src-main/engine/model/loaded-model'
import { WorkerPool } from '../../src-main/engine/pool/worker-pool'
import { syntheticModel } from '../models'
import { emit, peakRss } from '../rows'

const WINDOWS = 16
const SEQLEN = 256
const VOCAB = 32000
const CASE = 'GPTQ w4 g128, TinyLlama-1.1B shape layer 0, 16 × 256 calibration'

const dir = await syntheticModel('tinyllama-1.1b', 'BF16')
const model = await loadModel(dir)
const pool = await WorkerPool.create({ threads: 2 })
const rng = new PythonRandom(0)
const windows = Array.from({ length: WINDOWS }, () =>
  Int32Array.from({ length: SEQLEN }, () => rng.randint(0, VOCAB - 1)),
)

// Time each step of compressGroup: one Hinv per input group, then each Linear.
const rows: { variant: string; seconds: number }[] = []
const loops: { linear: string; hereSeconds: number; seconds: number; same: boolean }[] = []
const hinv: { group: string; serialSeconds: number; parallelSeconds: number; same: boolean }[] = []
gptq.compressGroup = async (ctx) => {
  const H = ctx.input!.hessian!
  const outcomes: LinearOutcome[] = []
  const p0 = ctx.linears[0].params
  const n = ctx.linears[0].cols
  // The damped Hessian planHessianAsync factors (no act-order, no dead inputs in this model).
  const Hd = H.slice()
  let meanDiag = 0
  for (let i = 0; i < n; i++) meanDiag += Hd[i * n + i] / n
  for (let i = 0; i < n; i++) Hd[i * n + i] += p0.damp * meanDiag
  let t0 = performance.now()
  const serial = await inverseCholeskyUpperOnWorker(ctx.pool!, Hd, n)
  const serialSeconds = (performance.now() - t0) / 1000
  t0 = performance.now()
  const parallel = await inverseCholeskyUpperParallel(ctx.pool!, Hd, n)
  const parallelSeconds = (performance.now() - t0) / 1000
  const same = Buffer.from(serial.buffer).equals(Buffer.from(parallel.buffer))
  hinv.push({ group: `${ctx.group} input, ${n}×${n}`, serialSeconds, parallelSeconds, same })
  t0 = performance.now()
  const plan = await planHessianAsync(H, n, p0, ctx.pool)
  rows.push({
    variant: `Hinv (${ctx.group} input, ${n}×${n}), split across workers`,
    seconds: (performance.now() - t0) / 1000,
  })
  for (const l of ctx.linears) {
    const p: GptqParams = l.params
    const before = l.weight.slice()
    t0 = performance.now()
    await gptqQuantizePlannedLoopHere(before, l.rows, l.cols, plan, p, ctx.pool)
    const hereSeconds = (performance.now() - t0) / 1000
    t0 = performance.now()
    await gptqQuantizePlanned(l.weight, l.rows, l.cols, plan, p, ctx.pool)
    const seconds = (performance.now() - t0) / 1000
    rows.push({ variant: `${l.role} [${l.rows}×${l.cols}]`, seconds })
    const same = Buffer.from(before.buffer).equals(Buffer.from(l.weight.buffer))
    loops.push({ linear: `${l.role} [${l.rows}×${l.cols}]`, hereSeconds, seconds, same })
    outcomes.push({
      name: l.name,
      bitsPerWeight: uniformBitsPerWeight(p.bits, l.cols, p.groupSize, p.sym),
      format: 'w4 g128',
    })
  }
  return outcomes
}

const recipe = validateRecipe({
  steps: [
    { method: 'gptq', params: { bits: 4, group_size: 128 }, targets: { include: ['layers\\.0\\.'], exclude: [] } },
  ],
})
const started = performance.now()
let captureSeconds = 0
const r = await runRecipe(pool, model, recipe, {
  windows,
  onProgress: (_f, message) => {
    if (message.endsWith('compressing') && captureSeconds === 0) captureSeconds = (performance.now() - started) / 1000
  },
})
const total = (performance.now() - started) / 1000
emit({
  case: CASE,
  variant: 'capture (embed + block 0 + Hessians)',
  measure: 'wall time',
  value: `${captureSeconds.toFixed(1)} s`,
})
for (const h of hinv)
  emit({
    case: CASE,
    variant: `Hinv (${h.group}): one worker → split across ${pool.threads} workers`,
    measure: 'wall time',
    value: `${h.serialSeconds.toFixed(2)} s → ${h.parallelSeconds.toFixed(2)} s`,
    ratio: `${(h.serialSeconds / h.parallelSeconds).toFixed(2)}×, ${h.same ? 'same bits' : 'BITS DIFFER'}`,
  })
for (const l of loops)
  emit({
    case: CASE,
    variant: `${l.linear}: column loop on the main thread → rows split across ${pool.threads} workers`,
    measure: 'wall time',
    value: `${l.hereSeconds.toFixed(2)} s → ${l.seconds.toFixed(2)} s`,
    ratio: `${(l.hereSeconds / l.seconds).toFixed(2)}×, ${l.same ? 'same bits' : 'BITS DIFFER'}`,
  })
for (const row of rows)
  emit({ case: CASE, variant: row.variant, measure: 'wall time', value: `${row.seconds.toFixed(2)} s` })
const gptqSeconds = rows.reduce((a, x) => a + x.seconds, 0)
const hinvSaved = hinv.reduce((a, h) => a + h.serialSeconds - h.parallelSeconds, 0)
const loopSaved = loops.reduce((a, l) => a + l.hereSeconds - l.seconds, 0)
emit({
  case: CASE,
  variant: 'GPTQ, all 7 Linears, as before #15: Hinv on one worker, column loop on the main thread (timed above)',
  measure: 'wall time',
  value: `${(gptqSeconds + hinvSaved + loopSaved).toFixed(1)} s`,
})
emit({
  case: CASE,
  variant: 'GPTQ, all 7 Linears (Hinv included)',
  measure: 'wall time',
  value: `${gptqSeconds.toFixed(1)} s`,
})
emit({
  case: CASE,
  variant: 'total (runRecipe)',
  measure: 'wall time',
  value: `${total.toFixed(1)} s`,
  ratio: `${r.tensors.length} Linears, mean rel. output error ${(r.tensors.reduce((a, t) => a + (t.relOutputError ?? 0), 0) / r.tensors.length).toFixed(4)}`,
  peakRss: peakRss(),
})
await pool.close()
