// Perplexity on stories260K beside PyTorch (issue #15: "≥ 5× the PyTorch reference on stories260K"). The
// PyTorch side is bench/pytorch/llama_eval.py: fp32 on CPU, one window per forward, the protocol the shared
// references were computed with. Both evaluate the same token ids (Whittle's tokenization of the bundled
// TinyStories eval, written to a temp file) at seqlen 256, with 1 and then 2 threads, in turn, for
// BENCH_ROUNDS rounds (default 2). Whittle runs twice each time: its exact kernels (the default, bit for bit
// the TS twins) and its fused ones (`whittle eval --kernels fused`, multiply-adds fused as PyTorch's BLAS
// fuses them). PYTORCH_PYTHON names a python with torch; without one the case prints
// Whittle's figures beside the references' own timing (another machine, so no ratio is claimed). Debian's
// python3-torch needs an optimized BLAS beside it (libopenblas0-openmp): with the reference netlib BLAS its
// matmuls run 10–20× slower, which would flatter Whittle.
//
// GPTQ beside the authors' code (issue #15: "≤ 0.5× the authors' PyTorch time on stories260K with the same
// 128 × 256 calibration, at equal threads"): with GPTQ_REPO naming a local copy of IST-DASLab/gptq (gptq.py
// and quant.py, not part of Whittle) and ../shared present, bench/pytorch/gptq_anchor.py runs their
// fasterquant block by block as their llama.py does, in turn with Whittle's GPTQ w4 (f32 scales, as the
// references) on the same 128 windows.

import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { calibrationWindows } from '../../src-main/engine/calibration/windows'
import { runRecipe } from '../../src-main/engine/compress/pipeline'
import { validateRecipe } from '../../src-main/engine/compress/recipe/recipe'
import { perplexity } from '../../src-main/engine/eval/perplexity'
import { DEMO_MODEL_DIR, demoTextIds, loadDemoModel } from '../../src-main/engine/eval/testing/demo-model'
import { WorkerPool } from '../../src-main/engine/pool/worker-pool'
import type { KernelVariant } from '../../kernels/host/load'
import { hasShared, referenceCalibrationStarts, referenceIds, shared } from '../../src-main/engine/testing/shared-data'
import { emit, peakRss } from '../rows'

const SEQLEN = 256
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2)
const script = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../pytorch/llama_eval.py')
const CASE = 'perplexity, stories260K, TinyStories eval (1,154 windows of 256)'

/** The first python that imports torch: PYTORCH_PYTHON, then Debian's, then the PATH's. */
function pythonWithTorch(): string | null {
  const candidates = [process.env.PYTORCH_PYTHON, '/usr/bin/python3', 'python3'].filter((p): p is string => !!p)
  for (const py of candidates) {
    const r = spawnSync(py, ['-c', 'import torch'], { stdio: 'ignore' })
    if (r.status === 0) return py
  }
  return null
}

interface Run {
  tokensPerSecond: number
  ppl: number
  seconds: number
}

const model = await loadDemoModel()
const ids = await demoTextIds(model, 'tinystories_eval')

/**
 * A pool whose workers have booted (each instantiated its kernels and answered an empty task): the clock
 * starts on a running engine, as the PyTorch side's starts with torch imported and the model loaded.
 * Every worker is idle at creation, so the empty tasks go one to each.
 */
async function startedPool(threads: number, kernels: KernelVariant = 'exact'): Promise<WorkerPool> {
  const pool = await WorkerPool.create({ threads, kernels })
  await Promise.all(Array.from({ length: threads }, () => pool.run([])))
  return pool
}

async function whittle(threads: number, kernels: KernelVariant = 'exact'): Promise<Run> {
  const pool = await startedPool(threads, kernels)
  try {
    const r = await perplexity(pool, model, ids, { seqlen: SEQLEN })
    return { tokensPerSecond: r.tokens_per_second, ppl: r.ppl, seconds: r.seconds }
  } finally {
    await pool.close()
  }
}

function pytorch(py: string, idsFile: string, threads: number): Run & { blas: string } {
  const r = spawnSync(py, [script, DEMO_MODEL_DIR, idsFile, '--seqlen', String(SEQLEN), '--threads', String(threads)], {
    encoding: 'utf8',
  })
  if (r.status !== 0) throw new Error(`llama_eval.py failed (status ${r.status}): ${r.stderr}`)
  const out = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as {
    ppl: number
    windows: number
    seconds: number
    blas: string
  }
  // Tokens run through the model (windows × seqlen), as Whittle's tokens_per_second counts them, not the
  // seqlen − 1 predictions per window.
  return { tokensPerSecond: (out.windows * SEQLEN) / out.seconds, ppl: out.ppl, seconds: out.seconds, blas: out.blas }
}

const label = (threads: number): string => (threads === 0 ? '1 thread' : `${threads} threads`)
const tps = (r: Run): string => `${Math.round(r.tokensPerSecond).toLocaleString('en')} tok/s`
const load = (): string => `load ${os.loadavg()[0].toFixed(1)}`

const py = pythonWithTorch()
if (!py) {
  for (const threads of [0, 2]) {
    const w = await whittle(threads)
    emit({ case: CASE, variant: `Whittle, ${label(threads)}`, measure: 'tokens/s', value: tps(w), ratio: load() })
  }
  if (hasShared) {
    const reference = JSON.parse(readFileSync(shared('reference', 'reference.json'), 'utf8')) as {
      runs: { name: string; ppl: Record<string, Record<string, { predicted_tokens: number; eval_seconds: number }>> }[]
    }
    const fp32 = reference.runs.find((r) => r.name === 'fp32')!.ppl.tinystories_eval[String(SEQLEN)]
    emit({
      case: CASE,
      variant: 'PyTorch, 1 thread, the references’ own run (another machine)',
      measure: 'tokens/s',
      value: `${Math.round(fp32.predicted_tokens / fp32.eval_seconds).toLocaleString('en')} tok/s`,
      ratio: 'set PYTORCH_PYTHON to a python with torch to measure side by side',
    })
  }
} else {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'whittle-pytorch-'))
  try {
    const idsFile = path.join(dir, 'ids.bin')
    writeFileSync(idsFile, new Uint8Array(ids.buffer, ids.byteOffset, ids.byteLength))
    for (let round = 0; round < ROUNDS; round++) {
      for (const [whittleThreads, torchThreads] of [
        [0, 1],
        [2, 2],
      ]) {
        // The exact kernels (bit for bit the twins') and the fused ones (`--kernels fused`: FMA, as
        // PyTorch's BLAS uses), in turn with the same PyTorch run.
        const runs = [] as { kernels: KernelVariant; w: Run; load: string }[]
        for (const kernels of ['exact', 'fused'] as const)
          runs.push({ kernels, w: await whittle(whittleThreads, kernels), load: load() })
        const t = pytorch(py, idsFile, torchThreads)
        for (const { kernels, w, load: wLoad } of runs)
          emit({
            case: CASE,
            variant: `Whittle (WASM SIMD, ${kernels} kernels), ${label(whittleThreads)}, round ${round + 1}`,
            measure: 'tokens/s',
            value: tps(w),
            ratio: `${(w.tokensPerSecond / t.tokensPerSecond).toFixed(2)}x PyTorch; ${w.seconds.toFixed(1)} s, ppl ${w.ppl.toFixed(6)}, ${wLoad}`,
            peakRss: peakRss(),
          })
        emit({
          case: CASE,
          variant: `PyTorch fp32 (bench/pytorch/llama_eval.py), ${label(torchThreads)}, round ${round + 1}`,
          measure: 'tokens/s',
          value: tps(t),
          ratio: `${t.seconds.toFixed(1)} s, ppl ${t.ppl.toFixed(6)}, BLAS ${t.blas}, ${load()}`,
        })
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

const gptqRepo = process.env.GPTQ_REPO
if (py && gptqRepo && hasShared) {
  const GPTQ_CASE = 'GPTQ w4 per-channel, stories260K, 128 × 256 calibration (compression only)'
  const windows = calibrationWindows(referenceIds('tinystories_calib'), {
    samples: 128,
    seqlen: SEQLEN,
    seed: 0,
    starts: referenceCalibrationStarts(),
  })
  const recipe = validateRecipe({ steps: [{ method: 'gptq', params: { bits: 4, scale_dtype: 'f32' } }] })
  const anchor = path.resolve(path.dirname(script), 'gptq_anchor.py')
  for (let round = 0; round < ROUNDS; round++) {
    for (const [whittleThreads, torchThreads] of [
      [0, 1],
      [2, 2],
    ]) {
      const pool = await startedPool(whittleThreads)
      const ours = (await runRecipe(pool, model, recipe, { windows })).seconds
      await pool.close()
      const wLoad = load()
      const r = spawnSync(
        py,
        [
          anchor,
          shared('models', 'stories260K'),
          shared('reference', 'tokens', 'tinystories_calib.ids.bin'),
          shared('reference', 'calib_starts.json'),
          '--gptq-repo',
          gptqRepo,
          '--threads',
          String(torchThreads),
        ],
        { encoding: 'utf8' },
      )
      if (r.status !== 0) throw new Error(`gptq_anchor.py failed (status ${r.status}): ${r.stderr}`)
      const theirs = (JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { seconds: number }).seconds
      emit({
        case: GPTQ_CASE,
        variant: `Whittle, ${label(whittleThreads)}, round ${round + 1}`,
        measure: 'wall',
        value: `${ours.toFixed(2)} s`,
        ratio: `${(ours / theirs).toFixed(2)}x the authors' time; ${wLoad}`,
        peakRss: peakRss(),
      })
      emit({
        case: GPTQ_CASE,
        variant: `IST-DASLab/gptq fasterquant (PyTorch fp32), ${label(torchThreads)}, round ${round + 1}`,
        measure: 'wall',
        value: `${theirs.toFixed(2)} s`,
        ratio: load(),
      })
    }
  }
}
