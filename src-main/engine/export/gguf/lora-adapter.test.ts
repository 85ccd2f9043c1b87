// The GGUF LoRA adapter export, re-opened and applied as llama.cpp's --lora applies it: after a short
// LoRA run on stories260K (B ≠ 0), the adapter is added to llama.cpp's own GGUF of the same model (q/k
// rows in llama.cpp's RoPE order) by GGUF tensor name with alpha / r, r read from lora_b, and the
// perplexity equals the merged HF model's. A control with B's q/k rows left unpermuted must not.

import { mkdtempSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ggufToHfRows } from '../../arch/rope-permute'
import { perplexity } from '../../eval/perplexity'
import { openModelFiles } from '../../formats/open'
import { readTensorF32 } from '../../formats/read'
import type { TensorEntry } from '../../formats/types'
import { loadModel, type LoadedModel } from '../../model/loaded-model'
import { withReplacements, type ModelView } from '../../model/model-view'
import { WorkerPool } from '../../pool/worker-pool'
import { hasShared, referenceIds, shared } from '../../testing/shared-data'
import type { LoraAdapterSet } from '../../train/lora'
import { applyAdapter, trainedLora } from '../testing/trained-lora'
import { exportGgufLoraAdapter } from './lora-adapter'

describe.skipIf(!hasShared)('the GGUF LoRA adapter re-opened and applied (reference data present)', () => {
  let pool: WorkerPool
  let model: LoadedModel
  let merged: ModelView
  let adapters: LoraAdapterSet
  let mergedPpl: number
  const dir = mkdtempSync(path.join(os.tmpdir(), 'whittle-gguf-lora-'))
  const ppl = async (m: LoadedModel): Promise<number> =>
    (await perplexity(pool, m, referenceIds('tinystories_eval'), { seqlen: 256, maxWindows: 8 })).ppl

  beforeAll(async () => {
    pool = await WorkerPool.create({ threads: 2 })
    ;({ model, merged, adapters } = await trainedLora(pool))
    mergedPpl = await ppl(merged)
  })
  afterAll(() => pool?.close())

  it("GGUF: llama.cpp's adapter layout applied to llama.cpp's GGUF base reproduces the merged perplexity", async () => {
    const file = path.join(dir, 'adapter.gguf')
    const r = await exportGgufLoraAdapter(file, adapters, model)
    expect(r.tensors).toBe(70)
    await expect(exportGgufLoraAdapter(file, adapters, model)).rejects.toMatchObject({ code: 'validation' })
    const back = await openModelFiles(file)
    expect(back.metadata).toMatchObject({
      'general.architecture': 'llama',
      'general.type': 'adapter',
      'adapter.type': 'lora',
      'adapter.lora.alpha': 8,
    })
    const ggufBase = await loadModel(shared('models/stories260K-gguf/stories260K.gguf'))
    const applied = withReplacements(ggufBase)
    // The control: B's q/k rows left in HF order, as if the permutation were forgotten.
    const unpermuted = withReplacements(ggufBase)
    const alpha = back.metadata['adapter.lora.alpha'] as number
    const loras = new Map<string, TensorEntry>(back.tensors.map((t) => [t.name, t]))
    let count = 0
    for (const [name, a] of loras) {
      if (!name.endsWith('.lora_a')) continue
      const weight = name.slice(0, -'.lora_a'.length)
      const b = loras.get(`${weight}.lora_b`)!
      const base = ggufBase.entry(weight)
      const [rows, cols] = base.shape
      const rank = b.shape[1]
      // llama.cpp's checks: a.ne[0] = W.ne[0], b.ne[1] = W.ne[1], a.ne[1] = b.ne[0] (ggml dims reversed here).
      expect(a.shape).toEqual([rank, cols])
      expect(b.shape).toEqual([rows, rank])
      const [W, A, B] = [await readTensorF32(base), await readTensorF32(a), await readTensorF32(b)]
      applied.replace(weight, applyAdapter(W, A, B, rows, cols, rank, alpha / rank))
      const qk = /attn_[qk]\./.test(weight)
      const heads = weight.includes('attn_q') ? ggufBase.arch.heads : ggufBase.arch.kvHeads
      unpermuted.replace(
        weight,
        applyAdapter(W, A, qk ? ggufToHfRows(B, rows, rank, heads) : B, rows, cols, rank, alpha / rank),
      )
      count++
    }
    expect(count).toBe(35)
    const basePpl = await ppl(ggufBase)
    expect(Math.abs(basePpl - (await ppl(model))) / basePpl).toBeLessThan(1e-5)
    expect(Math.abs((await ppl(applied)) - mergedPpl) / mergedPpl).toBeLessThan(1e-5)
    expect(Math.abs((await ppl(unpermuted)) - mergedPpl) / mergedPpl).toBeGreaterThan(1e-4)
  })
})
