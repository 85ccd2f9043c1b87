// CLI start-up on stories260K (issue #15: a small run must stay under 1 s): `whittle --help`, `whittle inspect`
// of the demo model and `whittle eval` of it with --max-windows 1 on the bundled TinyStories eval text, each
// spawned BENCH_RUNS times (default 7) and reported as median wall and median CPU seconds (the child's user +
// system time, worker threads included, taken by a tiny --import probe as the child exits).
// Variants, interleaved run by run so that a change in the machine's load hits each alike:
//   bundle  out/cli (built at the start), what `whittle` runs while the bundle is fresh;
//   source  the TypeScript sources through tsx (WHITTLE_CLI=source), what it runs otherwise;
//   BENCH_CLI_BASELINE=path/to/bin.mjs adds that CLI as "baseline" (e.g. an older checkout, extracted with
//   `git archive OLD src-main kernels/host kernels/reference package.json | tar -x -C out/old`).
// CPU seconds say more than wall time on a loaded machine; the load average is printed with the rows.

import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { cliBundleDir } from '../../src-main/cli/bundle-freshness.mjs'
import { emit } from '../rows'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')
const demo = path.join(root, 'resources', 'demo', 'stories260K')
const text = path.join(root, 'resources', 'text', 'tinystories_eval.txt')
const runs = Number(process.env.BENCH_RUNS ?? 7)

const scratch = mkdtempSync(path.join(os.tmpdir(), 'whittle-cli-startup-'))
const probe = path.join(scratch, 'cpu-probe.mjs')
const cpuFile = path.join(scratch, 'cpu.json')
writeFileSync(
  probe,
  `import { writeFileSync } from 'node:fs'\n` +
    `process.on('exit', () => { const c = process.cpuUsage(); writeFileSync(${JSON.stringify(cpuFile)}, String((c.user + c.system) / 1e6)) })\n`,
)

interface Variant {
  name: string
  bin: string
  env: Record<string, string>
}
const bin = path.join(root, 'src-main', 'cli', 'bin.mjs')
// The bundle is built now and run by what bin.mjs does on a fresh one (the freshness check included), not
// by bin.mjs itself: on a tree being edited meanwhile, bin.mjs would rightly switch to the sources mid-run.
const build = spawnSync(process.execPath, [path.join(root, 'src-main', 'cli', 'build-cli.mjs')], { stdio: 'inherit' })
if (build.status !== 0) throw new Error('cli-startup: npm run build:cli failed')
const bundleRunner = path.join(scratch, 'run-bundle.mjs')
writeFileSync(
  bundleRunner,
  `import { cliBundleDir, cliBundleProblem } from ${JSON.stringify(pathToFileURL(path.join(root, 'src-main', 'cli', 'bundle-freshness.mjs')).href)}\n` +
    `cliBundleProblem()\n` +
    `const { main } = await import(${JSON.stringify(pathToFileURL(path.join(cliBundleDir(), 'main.mjs')).href)})\n` +
    `process.exitCode = await main(process.argv.slice(2))\n`,
)
const variants: Variant[] = [
  { name: 'bundle', bin: bundleRunner, env: {} },
  { name: 'source (tsx)', bin, env: { WHITTLE_CLI: 'source' } },
]
if (process.env.BENCH_CLI_BASELINE)
  variants.push({ name: 'baseline', bin: path.resolve(process.env.BENCH_CLI_BASELINE), env: {} })

const commands: { name: string; args: string[] }[] = [
  { name: 'whittle --help', args: ['--help'] },
  { name: 'whittle inspect stories260K', args: ['inspect', demo] },
  { name: 'whittle eval stories260K --max-windows 1', args: ['eval', demo, '--text', text, '--max-windows', '1'] },
]

function once(v: Variant, args: string[]): { wall: number; cpu: number } {
  rmSync(cpuFile, { force: true })
  const t0 = performance.now()
  const r = spawnSync(process.execPath, ['--import', probe, v.bin, ...args], {
    encoding: 'utf8',
    env: { ...process.env, ...v.env, WHITTLE_CONFIG_DIR: scratch },
  })
  const wall = (performance.now() - t0) / 1000
  if (r.status !== 0) throw new Error(`${v.name} ${args.join(' ')} exited ${r.status}: ${r.stderr}`)
  return { wall, cpu: Number(readFileSync(cpuFile, 'utf8')) }
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}

try {
  for (const c of commands) {
    const samples = new Map(variants.map((v) => [v.name, [] as { wall: number; cpu: number }[]]))
    for (let i = 0; i < runs; i++) for (const v of variants) samples.get(v.name)!.push(once(v, c.args))
    const first = variants[0].name
    const firstCpu = median(samples.get(first)!.map((s) => s.cpu))
    for (const v of variants) {
      const s = samples.get(v.name)!
      const cpu = median(s.map((x) => x.cpu))
      emit({
        case: `CLI start-up: ${c.name}`,
        variant: v.name,
        measure: `median of ${runs}: wall / CPU`,
        value: `${median(s.map((x) => x.wall)).toFixed(2)} s / ${cpu.toFixed(2)} CPU-s`,
        ratio: `${v.name === first ? '' : `${(cpu / firstCpu).toFixed(1)}x ${first}'s CPU, `}load ${os.loadavg()[0].toFixed(1)}`,
      })
    }
  }
} finally {
  rmSync(scratch, { recursive: true, force: true })
}
