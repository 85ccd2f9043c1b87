// GGUF export beside llama-quantize (issue #15): the synthetic TinyLlama-1.1B shape in F16 (BENCH_PRESET
// picks another preset, e.g. tiny-llama-test for a quick check) exported by Whittle to F16, Q8_0, Q4_0 and
// Q4_K_M, verification included, each in its own process so that its wall time, CPU time and peak RSS are
// its own: the `whittle convert` CLI a user runs (src-main/cli/bin.mjs, the prebuilt bundle when it is
// fresh; `npm run bench` builds it), as llama-quantize's figures are its whole process, both under
// /usr/bin/time -v where it exists. BENCH_WHITTLE=engine times the engine in a child process run through
// tsx instead (process.resourceUsage; start-up then includes tsx's). With LLAMACPP_BIN set to a llama.cpp
// build folder, llama-quantize then quantizes Whittle's own F16 GGUF to the same types, in turn, with the
// same threads (BENCH_THREADS, default 2), under /usr/bin/time -v, and the ratios are printed; without
// it, the issue's published llama-quantize figures are printed beside Whittle's as anchors.
// BENCH_JOBS=F16,Q8_0 runs only the types named (F16 always: it is the input llama-quantize reads).

import { spawnSync } from 'node:child_process'
import { closeSync, existsSync, mkdtempSync, openSync, readSync, rmSync, statSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { exportGguf } from '../../src-main/engine/export/gguf/export-gguf'
import type { GgufExportType } from '../../src-main/engine/export/gguf/type-policy'
import { loadModel } from '../../src-main/engine/model/loaded-model'
import { WorkerPool } from '../../src-main/engine/pool/worker-pool'
import type { PRESETS } from '../../src-main/engine/synthetic/presets'
import { syntheticModel } from '../models'
import { emit } from '../rows'

const ALL_JOBS = ['F16', 'Q8_0', 'Q4_0', 'Q4_K_M'] as const
type Job = (typeof ALL_JOBS)[number]
/** BENCH_JOBS (comma-separated, e.g. F16,Q8_0) runs only those; F16 always runs: it is llama-quantize's input. */
const JOBS: Job[] = process.env.BENCH_JOBS
  ? ALL_JOBS.filter((j) => j === 'F16' || process.env.BENCH_JOBS!.split(',').includes(j))
  : [...ALL_JOBS]
const PRESET = (process.env.BENCH_PRESET ?? 'tinyllama-1.1b') as keyof typeof PRESETS
const THREADS = Number(process.env.BENCH_THREADS ?? 2)
const CASE = `GGUF side by side, ${PRESET} (F16), ${THREADS} threads`
const self = fileURLToPath(import.meta.url)
const CLI = path.resolve(path.dirname(self), '../../src-main/cli/bin.mjs')
const WHITTLE_MODE = process.env.BENCH_WHITTLE === 'engine' ? 'engine' : 'cli'

/** llama-quantize on the 1.1B shape, 2 threads, 2-core machine: issue #15's published anchors (seconds, peak RSS). */
const PUBLISHED: Partial<Record<Job, { whittle: string; llama: string; llamaSeconds: number }>> = {
  Q8_0: { whittle: '57.6 s, 1.1 GB', llama: '15.1 s, 2.6 GB', llamaSeconds: 15.1 },
  Q4_K_M: { whittle: '213 s, 1.1 GB', llama: '62 s, 2.6 GB', llamaSeconds: 62 },
  F16: { whittle: '50 s, 0.3 GB', llama: '—', llamaSeconds: NaN },
}

interface Measured {
  wall: number
  cpu: number
  /** Peak resident set, bytes. */
  rss: number
  bytes: number
}

const gb = (bytes: number): string => `${(bytes / 1e9).toFixed(2)} GB`

/** One Whittle export in this (child) process; prints its measurements as one JSON line. */
async function exportOnce(job: Job, source: string, out: string): Promise<void> {
  const t0 = performance.now()
  const pool = await WorkerPool.create({ threads: THREADS })
  try {
    const model = await loadModel(source)
    const report = await exportGguf(pool, model, out, { type: job as GgufExportType })
    const usage = process.resourceUsage()
    const measured: Measured = {
      wall: (performance.now() - t0) / 1000,
      cpu: (usage.userCPUTime + usage.systemCPUTime) / 1e6,
      rss: usage.maxRSS * 1024,
      bytes: report.bytes,
    }
    process.stdout.write(JSON.stringify(measured) + '\n')
  } finally {
    await pool.close()
  }
}

function whittle(job: Job, source: string, out: string): Measured {
  if (WHITTLE_MODE === 'cli') {
    const args = ['convert', source, '--format', 'gguf', '--gguf-type', job, '--threads', String(THREADS)]
    return timedProcess(process.execPath, [CLI, ...args, '--out', out], out, `whittle convert ${job}`)
  }
  const t0 = performance.now()
  const r = spawnSync(process.execPath, ['--import', 'tsx', self, job, source, out], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  if (r.status !== 0) throw new Error(`gguf-side-by-side: Whittle ${job} failed (${r.status})`)
  const measured = JSON.parse(r.stdout.trim().split('\n').pop()!) as Measured
  // The whole process, start-up and module loading included, as llama-quantize's is.
  return { ...measured, wall: (performance.now() - t0) / 1000 }
}

/**
 * Reads `file` once through the page cache. Whittle writes its GGUF around the cache (direct I/O), so
 * without this llama-quantize would read its input from the disk while Whittle's source sits in the cache.
 */
function warmPageCache(file: string): void {
  const fd = openSync(file, 'r')
  try {
    const buffer = new Uint8Array(16 << 20)
    while (readSync(fd, buffer, 0, buffer.length, null) > 0);
  } finally {
    closeSync(fd)
  }
}

/** One process, under /usr/bin/time -v when it exists (else wall time only); `out` is the file it writes. */
function timedProcess(exe: string, args: string[], out: string, what: string): Measured {
  const timed = existsSync('/usr/bin/time')
  const t0 = performance.now()
  const r = timed
    ? spawnSync('/usr/bin/time', ['-v', exe, ...args], { encoding: 'utf8', maxBuffer: 1 << 26 })
    : spawnSync(exe, args, { encoding: 'utf8', maxBuffer: 1 << 26 })
  const wall = (performance.now() - t0) / 1000
  if (r.status !== 0) throw new Error(`${what} failed (${r.status}): ${r.stderr.slice(-400)}`)
  const field = (name: string): number => Number(new RegExp(`${name}: ([\\d.]+)`).exec(r.stderr)?.[1] ?? NaN)
  return {
    wall,
    cpu: field('User time \\(seconds\\)') + field('System time \\(seconds\\)'),
    rss: field('Maximum resident set size \\(kbytes\\)') * 1024,
    bytes: existsSync(out) ? statSync(out).size : NaN,
  }
}

/** llama-quantize F16 -> job. */
function llamaQuantize(bin: string, job: Job, f16: string, out: string): Measured {
  const args = [f16, out, job, String(THREADS)]
  return timedProcess(path.join(bin, 'llama-quantize'), args, out, `llama-quantize ${job}`)
}

async function main(): Promise<void> {
  const source = await syntheticModel(PRESET, 'F16')
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'whittle-gguf-bench-'))
  const bin = process.env.LLAMACPP_BIN
  try {
    const f16 = path.join(tmp, 'whittle-F16.gguf')
    for (const job of JOBS) {
      const out = job === 'F16' ? f16 : path.join(tmp, `whittle-${job}.gguf`)
      const w = whittle(job, source, out)
      if (job !== 'F16') rmSync(out, { force: true })
      const row = {
        case: CASE,
        variant: `${job} (Whittle ${WHITTLE_MODE === 'cli' ? '`convert`' : 'engine via tsx'}, verified)`,
        measure: 'wall / CPU',
        value: `${w.wall.toFixed(1)} s / ${w.cpu.toFixed(1)} CPU-s`,
        peakRss: gb(w.rss),
      }
      if (job === 'F16') {
        emit({ ...row, ratio: `${gb(w.bytes / w.wall)}/s written` })
        continue
      }
      if (bin) {
        warmPageCache(f16)
        const l = llamaQuantize(bin, job, f16, path.join(tmp, `llama-${job}.gguf`))
        rmSync(path.join(tmp, `llama-${job}.gguf`), { force: true })
        emit({ ...row, ratio: `${(w.wall / l.wall).toFixed(2)}x wall, ${(w.cpu / l.cpu).toFixed(2)}x CPU` })
        emit({
          case: CASE,
          variant: `${job} (llama-quantize)`,
          measure: 'wall / CPU',
          value: `${l.wall.toFixed(1)} s / ${l.cpu.toFixed(1)} CPU-s`,
          peakRss: gb(l.rss),
        })
      } else {
        const anchor = PUBLISHED[job]
        const vsPublished =
          anchor && PRESET === 'tinyllama-1.1b'
            ? `${(w.wall / anchor.llamaSeconds).toFixed(2)}x published llama-quantize (${anchor.llama}; Whittle was ${anchor.whittle})`
            : anchor
              ? `published 1.1B anchors: llama-quantize ${anchor.llama}, Whittle before ${anchor.whittle}`
              : 'no published anchor'
        emit({ ...row, ratio: vsPublished })
      }
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true })
  }
}

const [job, source, out] = process.argv.slice(2)
if (job) await exportOnce(job as Job, source, out)
else await main()
