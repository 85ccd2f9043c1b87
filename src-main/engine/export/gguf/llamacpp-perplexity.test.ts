// Issue #13's proof against llama.cpp itself: each GGUF type Whittle writes, exported from stories260K,
// is run by llama-perplexity, and its number must match Whittle's own perplexity of the same file (the
// llama.cpp protocol, eval/perplexity.ts) within 1%. llama.cpp quantizes activations for its dot products
// (Q8_0/Q8_1/Q8_K), Whittle does not; that is the remaining difference, well under 1% here.
//
// Runs only where LLAMACPP_BIN names a llama.cpp build folder holding llama-perplexity. A build compiled
// with -march=native on a CPU with AMX/AVX-512 (GGML_NATIVE=ON, Feb 2025) computed NaN or garbage for
// small quantized models here, for its own llama-quantize files as well; build with GGML_NATIVE=OFF
// (AVX2/FMA/F16C) to check.

import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { perplexity } from '../../eval/perplexity'
import { evalBos, readTextFile, tokenizeForEval } from '../../eval/tokenize-text'
import { tempFolder } from '../../formats/testing/temp-files-and-errors'
import { loadModel } from '../../model/loaded-model'
import { WorkerPool } from '../../pool/worker-pool'
import { hasShared, shared, SKIP_SHARED } from '../../testing/shared-data'
import { exportGguf } from './export-gguf'
import type { GgufExportType } from './type-policy'

const CHUNKS = 20
const TYPES: GgufExportType[] = [
  'F32',
  'F16',
  'BF16',
  'Q8_0',
  'Q4_0',
  'Q4_1',
  'Q5_0',
  'Q5_1',
  'Q6_K',
  'IQ4_NL',
  'TQ2_0',
  'Q4_K_M',
  'Q3_K_M',
]

const llamaBin = process.env.LLAMACPP_BIN
const exe = llamaBin ? path.join(llamaBin, 'llama-perplexity') : ''
const runnable = hasShared && !!llamaBin && existsSync(exe)
const why = !hasShared ? SKIP_SHARED : 'LLAMACPP_BIN does not name a llama.cpp build with llama-perplexity; skipping'

const tmp = tempFolder('whittle-llamacpp-ppl-')
let pool: WorkerPool
/** The eval text's head, ample for CHUNKS windows (both tools read the same file; whole-text tokenizing is slow). */
let text: string
beforeAll(async () => {
  if (!runnable) return
  pool = await WorkerPool.create({ threads: 2 })
  text = path.join(tmp.dir, 'eval-head.txt')
  writeFileSync(text, readFileSync(shared('text/tinystories_eval.txt'), 'utf8').slice(0, 60_000))
})
afterAll(async () => {
  await pool?.close()
  tmp.cleanup()
})

function llamaPerplexity(gguf: string, text: string): number {
  const args = ['-m', gguf, '-f', text, '-c', '256', '--chunks', String(CHUNKS), '-t', '2', '-b', '256']
  const r = spawnSync(exe, args, { encoding: 'utf8', maxBuffer: 1 << 26, timeout: 300_000 })
  const out = r.stdout + r.stderr
  const m = /Final estimate: PPL = ([\d.]+|nan|inf)/.exec(out)
  if (!m) throw new Error(`llama-perplexity gave no estimate for ${gguf}: ${out.slice(-600)}`)
  return Number(m[1])
}

describe.skipIf(!runnable)(`Whittle's GGUF exports in llama-perplexity (${runnable ? exe : why})`, () => {
  for (const type of TYPES)
    it(`${type}: llama.cpp's perplexity of the export is Whittle's within 1%`, async () => {
      const source = await loadModel(shared('models/stories260K'))
      const out = path.join(tmp.dir, `stories260K-${type}.gguf`)
      await exportGguf(pool, source, out, { type })
      const theirs = llamaPerplexity(out, text)
      const exported = await loadModel(out)
      const ids = await tokenizeForEval(exported.files, await readTextFile(text))
      expect(ids.length).toBeGreaterThan(CHUNKS * 256)
      const ours = await perplexity(pool, exported, ids, {
        seqlen: 256,
        maxWindows: CHUNKS,
        protocol: 'llama.cpp',
        bos: await evalBos(exported.files),
      })
      expect(Number.isFinite(theirs), `llama-perplexity: ${theirs}`).toBe(true)
      expect(Math.abs(ours.ppl / theirs - 1)).toBeLessThan(0.01)
    })
})
