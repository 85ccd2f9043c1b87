// `npm run bench`: runs each benchmark case in its own child process (so peak RSS belongs to that case
// alone), then prints one table. Synthetic models are generated once into bench/.models (git-ignored).

import { spawnSync } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import type { BenchRow } from './rows'

const here = path.dirname(fileURLToPath(import.meta.url))
const only = process.argv.slice(2)
const CASES = [
  'stats-throughput',
  'cli-startup',
  'model-scan',
  'index-open',
  'forward',
  'pytorch-anchor',
  'quality',
  'quantize',
  'gptq-layer',
  'prune',
  'export',
  'gguf-side-by-side',
  'gguf-imatrix',
  'train-kd',
  'train-lora',
  'train-qlora',
]
// Long scale runs (tens of minutes, a 13.5 GB model): only when named, e.g. `npm run bench -- scale-7b`.
const ON_REQUEST = ['quantize-model', 'scale-7b']

const rows: BenchRow[] = []
for (const name of [...CASES, ...ON_REQUEST]) {
  if (only.length > 0 ? !only.includes(name) : ON_REQUEST.includes(name)) continue
  process.stderr.write(`bench: ${name}…\n`)
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(here, 'cases', `${name}.ts`)], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 1 << 24,
  })
  if (r.status !== 0) {
    process.stderr.write(`bench: ${name} failed with status ${r.status}\n`)
    process.exitCode = 1
    continue
  }
  for (const line of r.stdout.split('\n')) if (line.startsWith('{')) rows.push(JSON.parse(line))
}

const header = ['case', 'variant', 'measure', 'value', 'ratio', 'peak RSS']
const body = rows.map((r) => [r.case, r.variant, r.measure, r.value, r.ratio ?? '', r.peakRss ?? ''])
const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)))
const line = (c: string[]): string => `| ${c.map((x, i) => x.padEnd(widths[i])).join(' | ')} |`
const table = [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...body.map(line)].join('\n')
process.stdout.write(table + '\n')
mkdirSync(path.join(here, '..', 'test-results'), { recursive: true })
writeFileSync(path.join(here, '..', 'test-results', 'bench.md'), table + '\n')
