// `npm run fuzz`: mutates the real checkpoints (safetensors, a sharded index, GGUF, the HF sidecars,
// GPTQ and compressed-tensors exports) and opens each mutant the way the app does, counting per format
// the cases that opened, failed with a typed WhittleError, failed with anything else, hung, or asked
// for a buffer far beyond the input's size. One child process per format runs the cases (run past the
// time limit, it is killed and the case counted as a hang); inputs of every fault land in
// bench/fuzz/findings/. Usage:
//   npm run fuzz -- [--cases N] [--format NAME[,NAME]] [--seed S] [--time-limit SECONDS] [--case-timeout SECONDS]

import { fork, type ChildProcess } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { caseInput, saveFinding, type CaseReport, type RunnerArgs } from './case-runner'
import { FORMAT_NAMES, makeFormat, type FormatName } from './formats'
import { buildSeeds, type Seeds } from './seeds'
import { formatTable, type FormatTotals } from './table'

const here = path.dirname(fileURLToPath(import.meta.url))

interface Options {
  cases: number
  formats: FormatName[]
  seed: string
  timeLimitS: number
  caseTimeoutS: number
  bigAllocationBytes: number
}

function parseArgs(argv: string[]): Options {
  const o: Options = {
    cases: 1000,
    formats: [...FORMAT_NAMES],
    seed: '1',
    timeLimitS: Infinity,
    caseTimeoutS: 5,
    bigAllocationBytes: 256 << 20,
  }
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].split('=', 2)
    const value = (): string => {
      const v = inline ?? argv[++i]
      if (v === undefined) throw new Error(`${flag} needs a value`)
      return v
    }
    const positive = (v: string): number => {
      const n = Number(v)
      if (!(n > 0)) throw new Error(`${flag} must be a positive number, not "${v}"`)
      return n
    }
    if (flag === '--cases') o.cases = Math.floor(positive(value()))
    else if (flag === '--format') {
      o.formats = value()
        .split(',')
        .map((f) => {
          if (!(FORMAT_NAMES as readonly string[]).includes(f))
            throw new Error(`unknown format "${f}" (known: ${FORMAT_NAMES.join(', ')})`)
          return f as FormatName
        })
    } else if (flag === '--seed') o.seed = value()
    else if (flag === '--time-limit') o.timeLimitS = positive(value())
    else if (flag === '--case-timeout') o.caseTimeoutS = positive(value())
    else if (flag === '--big-allocation-mb') o.bigAllocationBytes = positive(value()) * (1 << 20)
    else throw new Error(`unknown option ${argv[i]}`)
  }
  return o
}

/** Runs cases [start, end) in one child; resolves with the index it stopped at and why. */
function runChild(
  args: RunnerArgs,
  o: Options,
  totals: FormatTotals,
  deadline: number,
): Promise<{ next: number; hung: boolean; crashed: string | null }> {
  return new Promise((resolve) => {
    const child: ChildProcess = fork(path.join(here, 'case-runner.ts'), [], {
      execArgv: ['--import', 'tsx', '--max-old-space-size=2048'],
      env: { ...process.env, WHITTLE_FUZZ_ARGS: JSON.stringify(args) },
      stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
    })
    let stderr = ''
    child.stderr!.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-4000)
    })
    let next = args.start
    let ready = false
    let lastBeat = Date.now()
    let settled = false
    let hung = false
    let stoppedForTime = false
    const finish = (crashed: string | null): void => {
      if (settled) return
      settled = true
      clearInterval(watchdog)
      resolve({ next, hung, crashed })
    }
    const watchdog = setInterval(() => {
      if (ready && Date.now() - lastBeat > o.caseTimeoutS * 1000) {
        hung = true
        child.kill('SIGKILL')
      } else if (ready && Date.now() > deadline && !stoppedForTime) {
        stoppedForTime = true
        child.kill('SIGKILL')
      }
    }, 100)
    child.on('message', (m: CaseReport | { type: 'ready' } | { type: 'done' }) => {
      lastBeat = Date.now()
      if (m.type === 'ready') ready = true
      else if (m.type === 'case') {
        if (stoppedForTime) return
        next = m.i + 1
        totals.cases++
        totals[m.outcome]++
        totals.largestAllocation = Math.max(totals.largestAllocation, m.alloc)
        totals.peakRss = Math.max(totals.peakRss, m.maxRss)
        if (m.alloc > o.bigAllocationBytes || m.rssGrowth > o.bigAllocationBytes) totals.bigAllocations++
        if (m.outcome === 'untyped') {
          totals.untypedSamples.set(m.error ?? '?', (totals.untypedSamples.get(m.error ?? '?') ?? 0) + 1)
        }
        if (totals.cases % 1000 === 0) {
          process.stderr.write(
            `fuzz ${totals.format}: ${totals.cases} cases (ok ${totals.ok}, typed ${totals.typed}, untyped ${totals.untyped}, hangs ${totals.hangs})\n`,
          )
        }
      }
    })
    child.on('exit', (code, signal) => {
      if (hung || stoppedForTime) return finish(null)
      if (code === 0) return finish(null)
      finish(
        `runner exited with ${signal ?? code}${ready ? '' : ' before it was ready'}: ${stderr.trim().split('\n').slice(-5).join(' | ')}`,
      )
    })
  })
}

async function fuzzFormat(
  name: FormatName,
  seeds: Seeds,
  o: Options,
  root: string,
  findingsDir: string,
): Promise<FormatTotals> {
  const totals: FormatTotals = {
    format: name,
    cases: 0,
    ok: 0,
    typed: 0,
    untyped: 0,
    hangs: 0,
    bigAllocations: 0,
    largestAllocation: 0,
    peakRss: 0,
    seconds: 0,
    untypedSamples: new Map(),
    skipped: null,
  }
  const format = makeFormat(name, seeds)
  if (!format.seedDir) {
    totals.skipped = seeds.notes.join('; ')
    return totals
  }
  const started = Date.now()
  const deadline = started + o.timeLimitS * 1000
  let start = 0
  let failedStarts = 0
  while (start < o.cases && Date.now() < deadline) {
    const workDir = mkdtempSync(path.join(root, `${name}-`))
    const args: RunnerArgs = {
      format: name,
      seed: o.seed,
      seeds,
      start,
      end: o.cases,
      workDir,
      findingsDir,
      bigAllocationBytes: o.bigAllocationBytes,
    }
    const r = await runChild(args, o, totals, deadline)
    rmSync(workDir, { recursive: true, force: true })
    if (r.next >= o.cases || Date.now() >= deadline) break
    // The case at r.next did not report: it hung, or it took the whole process down.
    const input = caseInput(format, o.seed, r.next)
    if (r.hung) {
      totals.hangs++
      totals.cases++
      saveFinding(findingsDir, name, o.seed, r.next, 'hang', input, `no result within ${o.caseTimeoutS} s`)
    } else if (r.crashed) {
      if (r.next === start && ++failedStarts > 2)
        throw new Error(`fuzz ${name}: the case runner keeps failing: ${r.crashed}`)
      totals.untyped++
      totals.cases++
      totals.untypedSamples.set(`process died: ${r.crashed.slice(0, 200)}`, 1)
      saveFinding(findingsDir, name, o.seed, r.next, 'crash', input, r.crashed)
    }
    start = r.next + 1
  }
  totals.seconds = (Date.now() - started) / 1000
  return totals
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2))
  const tmpBase = existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir()
  const root = mkdtempSync(path.join(tmpBase, 'whittle-fuzz-'))
  const findingsDir = path.join(here, 'findings')
  mkdirSync(findingsDir, { recursive: true })
  const cleanup = (): void => rmSync(root, { recursive: true, force: true })
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      cleanup()
      process.exit(signal === 'SIGINT' ? 130 : 143)
    })
  }
  try {
    process.stderr.write(`fuzz: building seeds in ${root}\n`)
    const seeds = await buildSeeds(path.join(root, 'seeds'))
    for (const n of seeds.notes) process.stderr.write(`fuzz: ${n}\n`)
    const results: FormatTotals[] = []
    for (const name of o.formats) {
      const t = await fuzzFormat(name, seeds, o, root, findingsDir)
      results.push(t)
      process.stderr.write(`fuzz ${name}: done, ${t.cases} cases in ${t.seconds.toFixed(0)} s\n`)
      process.stderr.write(`${formatTable([t], o.seed).split('\n').pop()}\n`)
      for (const [msg, n] of t.untypedSamples) process.stderr.write(`  untyped ×${n}: ${msg}\n`)
    }
    const table = formatTable(results, o.seed)
    process.stdout.write(`${table}\n`)
    const out = path.join(here, '..', '..', 'test-results')
    mkdirSync(out, { recursive: true })
    writeFileSync(path.join(out, `fuzz-${o.formats.join('+')}-${o.seed}.md`), `${table}\n`)
    const bad = results.some((r) => r.untyped > 0 || r.hangs > 0 || r.bigAllocations > 0)
    if (bad) process.stderr.write(`fuzz: faults found; inputs are in ${findingsDir}\n`)
    process.exitCode = bad ? 1 : 0
  } finally {
    cleanup()
  }
}

main().catch((e) => {
  process.stderr.write(`fuzz: ${e instanceof Error ? e.message : String(e)}\n`)
  process.exit(2)
})
