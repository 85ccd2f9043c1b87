// Computing an importance matrix: the chunking rule of llama-imatrix, the layer-0 attention input against an
// independent f64 computation from the embeddings, and every entry against llama-imatrix's own output for
// small-llama (../shared/reference/gguf-golden/imatrix/imatrix.gguf, -c 128 --chunks 100).

import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { WhittleError } from '../errors'
import { readTextFile, tokenizeForEval } from '../eval/tokenize-text'
import type { TensorPlace } from '../arch/types'
import { readImatrixFile } from '../formats/imatrix-file'
import { readTensorF32 } from '../formats/read'
import { loadModel, type LoadedModel } from '../model/loaded-model'
import { WorkerPool } from '../pool/worker-pool'
import { hasShared, shared, SKIP_SHARED } from '../testing/shared-data'
import { activationReport } from '../analysis/activation-report'
import { captureCalibration } from './capture'
import { chunkBos, computeImatrix, imatrixChunks, type ImatrixResult } from './imatrix'

describe('imatrixChunks: consecutive chunks of ctx tokens, BOS first', () => {
  const ids = Int32Array.from({ length: 10 }, (_, i) => 100 + i)
  it('cuts whole chunks only, replaces each first token with BOS, and leaves the ids alone', () => {
    const chunks = imatrixChunks(ids, 3, undefined, 1)
    expect(chunks.map((c) => [...c])).toEqual([
      [1, 101, 102],
      [1, 104, 105],
      [1, 107, 108],
    ])
    expect(ids[3]).toBe(103)
    expect(imatrixChunks(ids, 3, 2, 1)).toHaveLength(2)
    expect([...imatrixChunks(ids, 4, undefined, null)[1]]).toEqual([104, 105, 106, 107]) // no add_bos: no BOS
  })
  it('refuses a text shorter than two chunks (as llama-imatrix does) and bad sizes', () => {
    expect(() => imatrixChunks(ids, 6, undefined, 1, 't.txt')).toThrow(/10 tokens; .* needs at least 12/)
    expect(() => imatrixChunks(ids, 6, undefined, 1, 't.txt')).toThrow(WhittleError)
    expect(() => imatrixChunks(ids, 1, undefined, 1)).toThrow(WhittleError)
    expect(() => imatrixChunks(ids, 3, 0, 1)).toThrow(/--chunks/)
  })
})

if (!hasShared) console.log(`[calibration/imatrix.test] llama-imatrix golden: ${SKIP_SHARED}`)

describe.skipIf(!hasShared)('small-llama, -c 128 --chunks 100, against llama-imatrix', () => {
  const golden = (name: string): string => shared('reference', 'gguf-golden', 'imatrix', name)
  let pool: WorkerPool
  let model: LoadedModel
  let ids: Int32Array
  let result: ImatrixResult
  // The model is a GGUF, so each Linear's entry is named by the file's own tensor name.
  const ownName = (place: TensorPlace): string | null =>
    Object.entries(model.arch.places).find(([, p]) => p === place)?.[0] ?? null
  beforeAll(async () => {
    pool = await WorkerPool.create({ threads: 0 })
    model = await loadModel(golden('small-llama-tok-f32.gguf'))
    ids = await tokenizeForEval(model.files, await readTextFile(shared('text', 'tinystories_calib.txt')))
    const bos = await chunkBos(model.files, ids)
    expect(bos).toBe(1)
    result = await computeImatrix(pool, model, ids, {
      ctx: 128,
      chunks: 100,
      bos,
      entryName: ownName,
      dataset: 'tinystories_calib.txt',
    })
  })
  afterAll(async () => {
    await pool?.close()
  })

  it("the same entries, counts and metadata as llama-imatrix's file", async () => {
    const want = (await readImatrixFile(golden('imatrix.gguf'))).imatrix
    const got = result.imatrix
    expect([...got.entries.keys()].sort()).toEqual([...want.entries.keys()].sort())
    for (const [name, e] of want.entries) {
      expect(got.entries.get(name)!.columns, name).toBe(e.columns)
      expect([...got.entries.get(name)!.counts], name).toEqual([...e.counts])
    }
    expect(got.chunkCount).toBe(want.chunkCount)
    expect(got.chunkSize).toBe(want.chunkSize)
    expect(got.datasets).toEqual(want.datasets)
    expect(result.usedTokens).toBe(12800)
    expect(Number.isFinite(result.perplexity) && result.perplexity > 1).toBe(true)
  })

  it('layer 0 q/k/v: Σ over the chunks of RMSNorm(embedding)², computed here in f64, within 3e-5 (the f32 running sum)', async () => {
    const embed = await readTensorF32(model.entry('token_embd.weight'))
    const norm = await readTensorF32(model.entry('blk.0.attn_norm.weight'))
    const H = norm.length
    const eps = model.arch.normEps ?? 1e-5
    const want = new Float64Array(H)
    for (const chunk of imatrixChunks(ids, 128, 100, 1)) {
      for (const tok of chunk) {
        let ms = 0
        for (let j = 0; j < H; j++) ms += embed[tok * H + j] ** 2
        const scale = 1 / Math.sqrt(ms / H + eps)
        for (let j = 0; j < H; j++) want[j] += (embed[tok * H + j] * scale * norm[j]) ** 2
      }
    }
    for (const part of ['attn_q', 'attn_k', 'attn_v']) {
      const got = result.imatrix.entries.get(`blk.0.${part}.weight`)!.sums
      for (let j = 0; j < H; j++) expect(Math.abs(got[j] - want[j]) / want[j], `${part}[${j}]`).toBeLessThan(3e-5)
    }
  })

  it("the activation view's mean x² of an input is the imatrix row of every Linear reading it (same windows)", async () => {
    const chunks = imatrixChunks(ids, 128, 8, 1)
    const small = await computeImatrix(pool, model, ids, {
      ctx: 128,
      chunks: 8,
      bos: 1,
      entryName: ownName,
      dataset: 't',
    })
    const report = await activationReport(
      model,
      (await captureCalibration(pool, model, chunks)).map((l) => l!),
      128,
    )
    const readers = {
      qkv: ['attn_q', 'attn_k', 'attn_v'],
      o: ['attn_output'],
      gate_up: ['ffn_gate', 'ffn_up'],
      down: ['ffn_down'],
    }
    for (const input of report.inputs) {
      for (const part of readers[input.group]) {
        const e = small.imatrix.entries.get(`blk.${input.layer}.${part}.weight`)!
        const row = e.sums.map((v) => v / e.counts[0])
        for (let j = 0; j < row.length; j++)
          expect(Math.abs(input.meanSq[j] - row[j]) / row[j], `${part} ${input.layer} [${j}]`).toBeLessThan(1e-5)
      }
    }
  })

  it("with llama.cpp's attention replayed (f16 KV cache, flash attention): every value within 1e-4 of llama-imatrix's", async () => {
    const replayed = await computeImatrix(pool, model, ids, {
      ctx: 128,
      chunks: 100,
      bos: 1,
      entryName: ownName,
      dataset: 'tinystories_calib.txt',
      llamaCppAttention: true,
    })
    const want = (await readImatrixFile(golden('imatrix.gguf'))).imatrix
    for (const [name, e] of want.entries) {
      const got = replayed.imatrix.entries.get(name)!
      expect([...got.counts], name).toEqual([...e.counts])
      let worst = 0
      for (let j = 0; j < e.sums.length; j++) worst = Math.max(worst, Math.abs(got.sums[j] - e.sums[j]) / e.sums[j])
      expect(worst, name).toBeLessThan(1e-4)
    }
  })

  it("Whittle's own f32 attention: within 1e-3 of llama-imatrix's (1e-5 where no attention lies upstream)", async () => {
    // Inputs that depend on attention differ from llama.cpp's by up to ~5e-4: llama.cpp keeps K and V in
    // an f16 cache and accumulates attention in f16, Whittle computes in f32. The inputs before any
    // attention match to rounding.
    const want = (await readImatrixFile(golden('imatrix.gguf'))).imatrix
    for (const [name, e] of want.entries) {
      const got = result.imatrix.entries.get(name)!.sums
      const bound = name.startsWith('blk.0.attn_') && !name.includes('output') ? 1e-5 : 1e-3
      let worst = 0
      for (let j = 0; j < e.sums.length; j++) worst = Math.max(worst, Math.abs(got[j] - e.sums[j]) / e.sums[j])
      expect(worst, name).toBeLessThan(bound)
    }
  })
})
