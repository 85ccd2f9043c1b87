// The two perplexity protocols on the demo model (stories260K, bundled in resources/):
// - llama-perplexity's ('llama.cpp') is checked through causality, with the 'gptq' protocol as the
//   independent measure: a window's second-half NLL is its whole NLL minus that of its own first half + 1
//   tokens run alone, since no prediction sees a later token;
// - and, where LLAMACPP_BIN names a llama.cpp build, against llama-perplexity itself on the same GGUF.

import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { WhittleError } from '../errors'
import { loadModel, type LoadedModel } from '../model/loaded-model'
import { WorkerPool } from '../pool/worker-pool'
import { hasShared, repoRoot, shared, SKIP_SHARED } from '../testing/shared-data'
import { firstScoredPosition, perplexity, type PerplexityResult } from './perplexity'
import { evalBos, readTextFile, tokenizeForEval } from './tokenize-text'

const SEQLEN = 64
const WINDOWS = 6
let pool: WorkerPool
let model: LoadedModel
let ids: Int32Array

beforeAll(async () => {
  pool = await WorkerPool.create({ threads: 2 })
  model = await loadModel(path.join(repoRoot, 'resources/demo/stories260K'))
  const text = await readTextFile(path.join(repoRoot, 'resources/text/tinystories_eval.txt'))
  // A few kB of the text are enough for six windows (tokenizing all 600 kB takes seconds).
  ids = (await tokenizeForEval(model.files, text.slice(0, 8000))).slice(0, SEQLEN * WINDOWS + 7)
  expect(ids.length).toBe(SEQLEN * WINDOWS + 7)
})
afterAll(async () => {
  await pool?.close()
})

/** Σ NLL of a gptq-protocol result. */
const nllSum = (r: PerplexityResult): number => r.mean_nll * r.predictions

describe('the llama.cpp perplexity protocol', () => {
  it("scores each window's second half after a BOS, as the first half's run alone subtracts out", async () => {
    const bos = await evalBos(model.files)
    expect(bos).toBe(1)
    const llama = await perplexity(pool, model, ids, { seqlen: SEQLEN, protocol: 'llama.cpp', bos })
    const first = firstScoredPosition('llama.cpp', SEQLEN)
    expect(llama.windows).toBe(WINDOWS)
    expect(llama.predictions).toBe(WINDOWS * (SEQLEN - 1 - first))

    let expected = 0
    for (let w = 0; w < WINDOWS; w++) {
      const window = ids.slice(w * SEQLEN, (w + 1) * SEQLEN)
      window[0] = bos!
      const whole = await perplexity(pool, model, window, { seqlen: SEQLEN })
      const head = await perplexity(pool, model, window.slice(0, first + 1), { seqlen: first + 1 })
      expected += nllSum(whole) - nllSum(head)
    }
    expect(nllSum(llama) / expected - 1).toBeCloseTo(0, 5)

    // Not the same number as the gptq protocol's on the same windows.
    const gptq = await perplexity(pool, model, ids, { seqlen: SEQLEN })
    expect(gptq.predictions).toBe(WINDOWS * (SEQLEN - 1))
    expect(Math.abs(gptq.ppl / llama.ppl - 1)).toBeGreaterThan(0.01)
  })

  it('keeps the first token where the vocabulary adds no BOS', async () => {
    const kept = await perplexity(pool, model, ids, { seqlen: SEQLEN, protocol: 'llama.cpp', bos: null })
    const replaced = await perplexity(pool, model, ids, { seqlen: SEQLEN, protocol: 'llama.cpp', bos: 1 })
    // Window 0 starts with the text's BOS either way; the others differ.
    expect(kept.ppl).not.toBe(replaced.ppl)
  })

  it('refuses windows too short to score anything, with a typed error', async () => {
    const r = perplexity(pool, model, ids, { seqlen: 2, protocol: 'llama.cpp', bos: 1 })
    await expect(r).rejects.toBeInstanceOf(WhittleError)
    await expect(r).rejects.toMatchObject({ code: 'validation' })
  })
})

const llamaBin = process.env.LLAMACPP_BIN
const perplexityExe = llamaBin ? path.join(llamaBin, 'llama-perplexity') : ''
const canRunLlama = hasShared && !!llamaBin && existsSync(perplexityExe)
const why = !hasShared ? SKIP_SHARED : 'LLAMACPP_BIN does not name a llama.cpp build with llama-perplexity; skipping'

describe.skipIf(!canRunLlama)(`against llama-perplexity itself (${canRunLlama ? perplexityExe : why})`, () => {
  it('gives llama-perplexity -c 256 --chunks 10 on the reference stories260K.gguf within 0.05%', async () => {
    const gguf = shared('models/stories260K-gguf/stories260K.gguf')
    const text = shared('text/tinystories_eval.txt')
    const run = spawnSync(perplexityExe, ['-m', gguf, '-f', text, '-c', '256', '--chunks', '10', '-t', '2'], {
      encoding: 'utf8',
      maxBuffer: 1 << 26,
    })
    const theirs = Number(/Final estimate: PPL = ([\d.]+)/.exec(run.stdout + run.stderr)?.[1])
    expect(theirs).toBeGreaterThan(1)
    const m = await loadModel(gguf)
    const textIds = await tokenizeForEval(m.files, await readTextFile(text))
    const ours = await perplexity(pool, m, textIds, {
      seqlen: 256,
      maxWindows: 10,
      protocol: 'llama.cpp',
      bos: await evalBos(m.files),
    })
    // llama-perplexity prints 4 decimals.
    expect(Math.abs(ours.ppl - theirs)).toBeLessThan(Math.max(5e-4 * theirs, 1e-4))
  })
})
