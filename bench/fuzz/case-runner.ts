// The child process that runs fuzz cases for one format: mutate the seed, write the files into its own
// case folder (on tmpfs when available), open them the way the app does, touch what the app touches,
// classify the outcome, restore the seed. It reports every case to the supervisor (run.ts), which kills
// it when a case runs past the time limit. Untyped errors and big allocations are saved as findings here.

import { largestAllocation, resetLargestAllocation } from './alloc-watch' // first: wraps the allocators
import { copyFileSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { resourceUsage } from 'node:process'
import { isWhittleError } from '../../src-main/engine/errors'
import { tokenizeForEval } from '../../src-main/engine/eval/tokenize-text'
import { readTensorBytes, readTensorF32 } from '../../src-main/engine/formats/read'
import { closeAllFiles } from '../../src-main/engine/io/ranged-file'
import { loadModel } from '../../src-main/engine/model/loaded-model'
import { decodeTensorF32 } from '../../src-main/engine/pool/decode-tensor'
import { WorkerPool } from '../../src-main/engine/pool/worker-pool'
import { makeFormat, type CaseInput, type Format, type FormatName } from './formats'
import { Rng } from './prng'
import type { Seeds } from './seeds'

export type Outcome = 'ok' | 'typed' | 'untyped'

export interface CaseReport {
  type: 'case'
  i: number
  outcome: Outcome
  /** Largest single buffer requested (bytes) and growth of peak RSS (bytes) during the case. */
  alloc: number
  rssGrowth: number
  maxRss: number
  error?: string
}

export interface RunnerArgs {
  format: FormatName
  seed: string
  seeds: Seeds
  start: number
  end: number
  workDir: string
  findingsDir: string
  bigAllocationBytes: number
}

/** Text the tokenizer encodes: ASCII, a multi-byte character and a word the toy vocabulary lacks. */
const SAMPLE_TEXT = 'Once upon a time, a little girl named Lily saw a 🐝 in the garden.'

export function caseInput(format: Format, seed: string, i: number): CaseInput {
  return format.mutate(new Rng(seed, format.name, i))
}

function maxRssBytes(): number {
  return resourceUsage().maxRSS * 1024
}

/** Opens, lists, reads a few tensors (TS and WASM decode paths) and, for sidecars, tokenizes. */
async function touch(format: Format, open: string, targets: string[], rng: Rng, pool: WorkerPool): Promise<void> {
  const model = await loadModel(open)
  // What crosses IPC and JSON to the renderer must be plain data (a function here breaks both).
  structuredClone(model.summary)
  structuredClone(model.tensors)
  JSON.stringify(model.summary)
  const names = model.tensors.map((t) => t.name)
  if (names.length > 0) {
    const preferred = format.preferRead ? names.filter(format.preferRead) : []
    const picks = new Set([names[0], names[names.length - 1], rng.pick(names)])
    if (preferred.length > 0) picks.add(rng.pick(preferred)).add(rng.pick(preferred))
    // Packed Linears (GPTQ, compressed-tensors) decode only when read: read those whose parts the
    // mutation aimed at, so a fault in them is reached.
    for (const t of model.files.tensors) {
      const module = t.name.replace(/\.weight$/, '.')
      if (t.unpack && targets.some((x) => x.startsWith(module))) picks.add(t.name)
    }
    for (const name of picks) {
      const entry = model.entry(name)
      if (rng.chance(0.5)) await readTensorF32(entry, 1 << 24)
      else await decodeTensorF32(pool, entry)
      if (entry.byteLength > 0) await readTensorBytes(entry, rng.int(entry.byteLength), 1)
    }
  }
  if (format.tokenizes) await tokenizeForEval(model.files, SAMPLE_TEXT)
}

function describe(e: unknown): string {
  if (e instanceof Error) return `${e.name}: ${e.message}\n${e.stack ?? ''}`
  return `thrown non-Error: ${String(e)}`
}

export function saveFinding(
  dir: string,
  format: FormatName,
  seed: string,
  i: number,
  kind: string,
  input: CaseInput,
  detail: string,
): string {
  const where = path.join(dir, `${format}-${seed}-${i}-${kind}`)
  rmSync(where, { recursive: true, force: true })
  mkdirSync(where, { recursive: true })
  for (const [name, bytes] of Object.entries(input.files))
    writeFileSync(path.join(where, name.replace(/[\\/]/g, '_')), bytes)
  writeFileSync(
    path.join(where, 'finding.txt'),
    `format: ${format}\nseed: ${seed}\ncase: ${i}\nkind: ${kind}\nopen: ${input.open}\nmutation: ${input.what}\n\n${detail}\n`,
  )
  return where
}

async function main(): Promise<void> {
  const args = JSON.parse(process.env.WHITTLE_FUZZ_ARGS ?? '{}') as RunnerArgs
  const send = (m: object): Promise<void> => new Promise((res) => process.send!(m, () => res()))
  const format = makeFormat(args.format, args.seeds)
  const seedDir = format.seedDir!
  const caseDir = path.join(args.workDir, 'case')
  rmSync(caseDir, { recursive: true, force: true })
  mkdirSync(caseDir, { recursive: true })
  for (const n of readdirSync(seedDir)) copyFileSync(path.join(seedDir, n), path.join(caseDir, n))
  // threads 0: the kernels run on this thread, so a hang or a fault stays inside this process.
  const pool = await WorkerPool.create({ threads: 0 })

  let asyncFault: unknown = null
  // Errors that escape the awaited chain (a stream's 'error', a rejected promise nobody awaited) are
  // faults of the case that caused them.
  process.on('uncaughtException', (e) => {
    asyncFault ??= e
  })
  process.on('unhandledRejection', (e) => {
    asyncFault ??= e
  })

  await send({ type: 'ready' })
  for (let i = args.start; i < args.end; i++) {
    const input = caseInput(format, args.seed, i)
    for (const [name, bytes] of Object.entries(input.files)) writeFileSync(path.join(caseDir, name), bytes)
    const rssBefore = maxRssBytes()
    resetLargestAllocation()
    asyncFault = null
    let outcome: Outcome = 'ok'
    let error: string | undefined
    try {
      await touch(
        format,
        path.join(caseDir, input.open),
        input.targets ?? [],
        new Rng(args.seed, format.name, i, 'touch'),
        pool,
      )
    } catch (e) {
      if (isWhittleError(e)) outcome = 'typed'
      else {
        outcome = 'untyped'
        error = describe(e)
      }
    }
    await new Promise((r) => setImmediate(r)) // let stray rejections of this case surface now
    if (asyncFault !== null && outcome !== 'untyped') {
      outcome = 'untyped'
      error = `escaped the awaited chain: ${describe(asyncFault)}`
    }
    closeAllFiles()
    const alloc = largestAllocation()
    const maxRss = maxRssBytes()
    const rssGrowth = maxRss - rssBefore
    if (outcome === 'untyped') saveFinding(args.findingsDir, args.format, args.seed, i, 'untyped', input, error!)
    if (alloc > args.bigAllocationBytes || rssGrowth > args.bigAllocationBytes) {
      saveFinding(
        args.findingsDir,
        args.format,
        args.seed,
        i,
        'big-allocation',
        input,
        `largest buffer requested: ${alloc} bytes; peak RSS grew ${rssGrowth} bytes; outcome ${outcome}\n${error ?? ''}`,
      )
    }
    for (const name of Object.keys(input.files)) copyFileSync(path.join(seedDir, name), path.join(caseDir, name))
    const report: CaseReport = { type: 'case', i, outcome, alloc, rssGrowth, maxRss, error: error?.split('\n')[0] }
    await send(report)
  }
  await pool.close()
  await send({ type: 'done' })
  process.exit(0)
}

if (process.env.WHITTLE_FUZZ_ARGS) {
  main().catch((e) => {
    process.stderr.write(`fuzz runner failed: ${describe(e)}\n`)
    process.exit(2)
  })
}
