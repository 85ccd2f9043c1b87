// Whole-model quantization at scale (issue #15): GPTQ (or RTN) w4 g128 over every decoder layer of a
// synthetic model, through the real pipeline (runRecipe: calibration capture with Hessians on the WASM
// kernels, Hinv and the column loop across the workers, the compressed forward to the next layer's inputs).
// Knobs, all optional:
// - BENCH_METHOD: gptq (default) or rtn;
// - BENCH_PRESET: tinyllama-1.1b (default) or llama-7b (13.5 GB of F16, generated once into bench/.models);
// - BENCH_LAYERS: compress layers 0 … n−1 only (default: all), to time a few layers and extrapolate;
// - BENCH_WINDOWS: calibration windows of 256 tokens (default 128, GPTQ's reference calibration);
// - BENCH_THREADS: workers (default 2).
// Wall time (from this module's first line: model loading included, Node's start-up not), CPU time and peak
// RSS (the OS's accounting for this whole process, workers included: process.resourceUsage); the per-layer
// rows split each layer into calibration capture (running the original block with the Hessians
// accumulating) and the method's own work, the rest being the compressed block's forward pass. Progress goes
// to stderr as it happens, since a whole-model run takes tens of minutes on two cores.

import { getMethod } from '../../src-main/engine/compress/methods'
import type { GroupContext, LinearOutcome } from '../../src-main/engine/compress/methods/method'
import { runRecipe } from '../../src-main/engine/compress/pipeline'
import { validateRecipe } from '../../src-main/engine/compress/recipe/recipe'
import { PythonRandom } from '../../src-main/engine/calibration/python-random'
import { loadModel } from '../../src-main/engine/model/loaded-model'
import { WorkerPool } from '../../src-main/engine/pool/worker-pool'
import { PRESETS, isPresetName } from '../../src-main/engine/synthetic/presets'
import { syntheticModel } from '../models'
import { emit } from '../rows'

const started = performance.now()
const METHOD = process.env.BENCH_METHOD ?? 'gptq'
if (METHOD !== 'gptq' && METHOD !== 'rtn') throw new Error(`BENCH_METHOD must be gptq or rtn, not ${METHOD}`)
const PRESET = process.env.BENCH_PRESET ?? 'tinyllama-1.1b'
if (!isPresetName(PRESET)) throw new Error(`BENCH_PRESET: unknown preset ${PRESET}`)
const shape = PRESETS[PRESET]
const LAYERS = Number(process.env.BENCH_LAYERS ?? shape.layers)
if (!Number.isInteger(LAYERS) || LAYERS < 1 || LAYERS > shape.layers)
  throw new Error(`BENCH_LAYERS must be an integer in 1…${shape.layers}`)
const WINDOWS = METHOD === 'rtn' ? 0 : Number(process.env.BENCH_WINDOWS ?? 128)
const THREADS = Number(process.env.BENCH_THREADS ?? 2)
const SEQLEN = 256
const layerText =
  LAYERS === shape.layers
    ? `all ${LAYERS} layers`
    : `${LAYERS === 1 ? 'layer 0' : `layers 0–${LAYERS - 1}`} of ${shape.layers}`
const calibrationText = METHOD === 'rtn' ? 'no calibration' : `${WINDOWS} × ${SEQLEN} calibration`
const CASE = `${METHOD.toUpperCase()} w4 g128, ${PRESET} (F16), ${layerText}, ${calibrationText}, ${THREADS} threads`

const log = (message: string): void => {
  process.stderr.write(`[${((performance.now() - started) / 1000).toFixed(1)} s] ${message}\n`)
}

const dir = await syntheticModel(PRESET, 'F16')
const model = await loadModel(dir)
const pool = await WorkerPool.create({ threads: THREADS })
const rng = new PythonRandom(0)
const windows = Array.from({ length: WINDOWS }, () =>
  Int32Array.from({ length: SEQLEN }, () => rng.randint(0, shape.vocabSize - 1)),
)

// The method's own time per layer: the same compressGroup the pipeline calls, timed around the call.
const method = getMethod(METHOD, 'bench')
const compressGroup = method.compressGroup.bind(method)
const methodSeconds = new Map<number, number>()
method.compressGroup = async (ctx: GroupContext): Promise<LinearOutcome[]> => {
  const t0 = performance.now()
  const outcomes = await compressGroup(ctx)
  methodSeconds.set(ctx.layer, (methodSeconds.get(ctx.layer) ?? 0) + (performance.now() - t0) / 1000)
  return outcomes
}

// Each layer's wall time from one 'done' to the next, and the calibration capture inside it.
const layerSeconds: number[] = []
const captureSeconds: number[] = []
let lastMark = 0
let layerStarted = 0
const recipe = validateRecipe({
  steps: [
    {
      method: METHOD,
      params: { bits: 4, group_size: 128 },
      targets: { include: [`layers\\.(${Array.from({ length: LAYERS }, (_, i) => i).join('|')})\\.`], exclude: [] },
    },
  ],
})
const loaded = (performance.now() - started) / 1000
log(`${CASE}: model and pool ready`)
const runStarted = performance.now()
lastMark = runStarted
layerStarted = runStarted
const result = await runRecipe(pool, model, recipe, {
  windows: WINDOWS > 0 ? windows : undefined,
  onProgress: (_fraction, message) => {
    const m = /layer (\d+)\/\d+ (\w+)/.exec(message)
    if (!m) return
    const layer = Number(m[1]) - 1
    const now = performance.now()
    if (m[2] === 'compressing') {
      captureSeconds[layer] = (now - lastMark) / 1000
      const rss = process.resourceUsage().maxRSS / 1048576
      log(`layer ${layer}: captured in ${captureSeconds[layer].toFixed(1)} s, peak RSS ${rss.toFixed(2)} GiB`)
    }
    if (m[2] === 'done' && layer < LAYERS) {
      layerSeconds[layer] = (now - layerStarted) / 1000
      layerStarted = now
      const usage = process.resourceUsage()
      log(
        `layer ${layer}: ${layerSeconds[layer].toFixed(1)} s (capture ${(captureSeconds[layer] ?? 0).toFixed(1)} s, ` +
          `${METHOD} ${(methodSeconds.get(layer) ?? 0).toFixed(1)} s), peak RSS ${(usage.maxRSS / 1048576).toFixed(2)} GiB`,
      )
    }
    lastMark = now
  },
})
const runSeconds = (performance.now() - runStarted) / 1000
await pool.close()
const usage = process.resourceUsage()
const wall = (performance.now() - started) / 1000
const cpu = (usage.userCPUTime + usage.systemCPUTime) / 1e6
const peak = `${(usage.maxRSS / 1048576).toFixed(2)} GiB`

const mean = (xs: number[]): number => xs.reduce((a, x) => a + x, 0) / xs.length
for (const [layer, seconds] of layerSeconds.entries())
  emit({
    case: CASE,
    variant: `layer ${layer}`,
    measure: 'wall: layer (capture + method)',
    value: `${seconds.toFixed(1)} s (${(captureSeconds[layer] ?? 0).toFixed(1)} s + ${(methodSeconds.get(layer) ?? 0).toFixed(1)} s)`,
  })
// Layer 0 also pays for the embedding lookup and the first capture set-up; later layers are the steady state.
const steady = layerSeconds.length > 1 ? mean(layerSeconds.slice(1)) : layerSeconds[0]
emit({
  case: CASE,
  variant: `mean layer${layerSeconds.length > 1 ? ' (layers 1 on)' : ''}`,
  measure: 'wall per layer',
  value: `${steady.toFixed(1)} s`,
  ratio:
    LAYERS < shape.layers
      ? `all ${shape.layers} layers ≈ ${((loaded + layerSeconds[0] + steady * (shape.layers - 1)) / 60).toFixed(0)} min (extrapolated)`
      : undefined,
})
const meanError = result.tensors.reduce((a, t) => a + (t.relOutputError ?? t.relWeightError), 0) / result.tensors.length
emit({
  case: CASE,
  variant: 'whole process (load + runRecipe)',
  measure: 'wall / CPU',
  value: `${wall.toFixed(1)} s / ${cpu.toFixed(1)} CPU-s (runRecipe ${runSeconds.toFixed(1)} s)`,
  ratio: `${result.tensors.length} Linears, mean rel. ${WINDOWS > 0 ? 'output' : 'weight'} error ${meanError.toFixed(4)}`,
  peakRss: peak,
})
log(`done: ${wall.toFixed(1)} s wall, ${cpu.toFixed(1)} CPU-s, peak RSS ${peak}`)
