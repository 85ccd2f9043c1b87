// The Llama-2-7B shape (issue #15): 13.5 GB of F16, generated once into bench/.models, and three jobs on it,
// each in its own child process so that its wall time, CPU time and peak RSS (the OS's accounting) are its
// own, checked against the memory goals:
// - GGUF Q4_K_M export, verification included (gguf-side-by-side.ts's single-export mode): peak RSS ≤ 1 GB;
// - RTN w4 g128 over the whole model (quantize-model.ts): peak RSS ≤ 4 GB;
// - GPTQ w4 g128 on the first BENCH_GPTQ_LAYERS layers (default 2) with BENCH_WINDOWS × 256 calibration
//   (default 128), extrapolated to all 32 layers (quantize-model.ts): peak RSS ≤ 4 GB. On this shape the
//   11008² down_proj Hessian does not fit beside the forward's layer weights in kernel memory and is
//   accumulated in TS on the main thread (about 0.2 CPU-s per calibration token; README "Scale"), so a
//   quick memory check takes BENCH_WINDOWS=1.
// BENCH_JOBS picks some of them (comma-separated: gguf, rtn, gptq); BENCH_THREADS is passed on (default 2).

import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { syntheticModel } from '../models'
import { emit, type BenchRow } from '../rows'

const PRESET = 'llama-7b'
const THREADS = process.env.BENCH_THREADS ?? '2'
const JOBS = (process.env.BENCH_JOBS ?? 'gguf,rtn,gptq').split(',')
const GIB = 2 ** 30
/** The goals, in decimal GB (the stricter reading). */
const RSS_GOAL_GB: Record<string, number> = { gguf: 1, rtn: 4, gptq: 4 }
const here = path.dirname(fileURLToPath(import.meta.url))

function child(script: string, args: string[], env: Record<string, string>): string {
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(here, script), ...args], {
    encoding: 'utf8',
    env: { ...process.env, BENCH_PRESET: PRESET, BENCH_THREADS: THREADS, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 1 << 24,
  })
  if (r.status !== 0) throw new Error(`scale-7b: ${script} ${args.join(' ')} failed with status ${r.status}`)
  return r.stdout
}

/** Passes a quantize-model.ts run's rows on, its whole-process row marked against the job's memory goal. */
function quantizeRows(job: 'rtn' | 'gptq', stdout: string): void {
  for (const line of stdout.split('\n')) {
    if (!line.startsWith('{')) continue
    const row = JSON.parse(line) as BenchRow
    if (row.peakRss) {
      const rss = Number.parseFloat(row.peakRss) * GIB
      const within = rss <= RSS_GOAL_GB[job] * 1e9
      row.ratio = `${row.ratio}; peak RSS ${within ? 'within' : 'OVER'} the ${RSS_GOAL_GB[job]} GB goal`
    }
    emit(row)
  }
}

const source = await syntheticModel(PRESET, 'F16')
if (JOBS.includes('gguf')) {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'whittle-scale-7b-'))
  try {
    const t0 = performance.now()
    const out = child('gguf-side-by-side.ts', ['Q4_K_M', source, path.join(tmp, 'Q4_K_M.gguf')], {})
    const wall = (performance.now() - t0) / 1000
    const m = JSON.parse(out.trim().split('\n').pop()!) as { cpu: number; rss: number; bytes: number }
    emit({
      case: `Scale: ${PRESET} (F16, 13.5 GB), ${THREADS} threads`,
      variant: 'GGUF Q4_K_M export (verified), whole process',
      measure: 'wall / CPU',
      value: `${wall.toFixed(1)} s / ${m.cpu.toFixed(1)} CPU-s`,
      ratio: `${(m.bytes / 1e9).toFixed(2)} GB written; peak RSS ${m.rss <= RSS_GOAL_GB.gguf * 1e9 ? 'within' : 'OVER'} the 1 GB goal`,
      peakRss: `${(m.rss / GIB).toFixed(2)} GiB`,
    })
  } finally {
    rmSync(tmp, { recursive: true, force: true })
  }
}
if (JOBS.includes('rtn')) quantizeRows('rtn', child('quantize-model.ts', [], { BENCH_METHOD: 'rtn' }))
if (JOBS.includes('gptq'))
  quantizeRows(
    'gptq',
    child('quantize-model.ts', [], { BENCH_METHOD: 'gptq', BENCH_LAYERS: process.env.BENCH_GPTQ_LAYERS ?? '2' }),
  )
