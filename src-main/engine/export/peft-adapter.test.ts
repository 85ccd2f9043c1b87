// The PEFT adapter export, re-opened and applied as PEFT applies it: after a short LoRA run on
// stories260K (B ≠ 0), adapter_config.json and adapter_model.safetensors are read back, each
// lora_A/lora_B pair is added to the HF base as W + (lora_alpha / r)·B·A by module name, and the
// perplexity equals the merged model's.

import { mkdtempSync, readFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { perplexity } from '../eval/perplexity'
import { openModelFiles } from '../formats/open'
import { readTensorF32 } from '../formats/read'
import type { LoadedModel } from '../model/loaded-model'
import { withReplacements, type ModelView } from '../model/model-view'
import { WorkerPool } from '../pool/worker-pool'
import { hasShared, referenceIds } from '../testing/shared-data'
import type { LoraAdapterSet } from '../train/lora'
import { exportPeftAdapter, peftTargetModules } from './peft-adapter'
import { applyAdapter, trainedLora } from './testing/trained-lora'

describe('PEFT target_modules', () => {
  it('lists module names when every layer has the same set, and full-match regexes otherwise', () => {
    const all = [0, 1].flatMap((l) => [`model.layers.${l}.self_attn.q_proj`, `model.layers.${l}.mlp.down_proj`])
    expect(peftTargetModules(all, 2)).toEqual(['down_proj', 'q_proj'])
    const some = ['model.layers.1.self_attn.q_proj']
    const re = peftTargetModules(some, 2) as string
    expect(new RegExp(`^(?:${re})$`).test('model.layers.1.self_attn.q_proj')).toBe(true)
    expect(new RegExp(`^(?:${re})$`).test('model.layers.0.self_attn.q_proj')).toBe(false)
  })
})

describe.skipIf(!hasShared)('the PEFT adapter re-opened and applied (reference data present)', () => {
  let pool: WorkerPool
  let model: LoadedModel
  let merged: ModelView
  let adapters: LoraAdapterSet
  let mergedPpl: number
  const dir = mkdtempSync(path.join(os.tmpdir(), 'whittle-lora-export-'))
  const evalIds = (): Int32Array => referenceIds('tinystories_eval')
  const ppl = async (m: LoadedModel): Promise<number> =>
    (await perplexity(pool, m, evalIds(), { seqlen: 256, maxWindows: 8 })).ppl

  beforeAll(async () => {
    pool = await WorkerPool.create({ threads: 2 })
    ;({ model, merged, adapters } = await trainedLora(pool))
    mergedPpl = await ppl(merged)
  })
  afterAll(() => pool?.close())

  it('trained adapters move the model (B is no longer zero)', async () => {
    expect(adapters.adapters).toHaveLength(35)
    expect(adapters.adapters.every((a) => a.B.some((v) => v !== 0))).toBe(true)
    expect(Math.abs(mergedPpl - (await ppl(model))) / mergedPpl).toBeGreaterThan(1e-4)
  })

  it('PEFT: the folder reads back as PEFT writes it, and applying it to the base reproduces the merged perplexity', async () => {
    const out = path.join(dir, 'peft')
    const r = await exportPeftAdapter(out, adapters, model, 'stories260K')
    expect(r.tensors).toBe(70)
    const config = JSON.parse(readFileSync(path.join(out, 'adapter_config.json'), 'utf8'))
    expect(config).toMatchObject({
      peft_type: 'LORA',
      r: 4,
      lora_alpha: 8,
      base_model_name_or_path: 'stories260K',
      task_type: 'CAUSAL_LM',
    })
    expect([...config.target_modules].sort()).toEqual([
      'down_proj',
      'gate_proj',
      'k_proj',
      'o_proj',
      'q_proj',
      'up_proj',
      'v_proj',
    ])
    const files = await openModelFiles(path.join(out, 'adapter_model.safetensors'))
    expect(files.tensors.map((t) => t.name)).toContain('base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight')
    const byName = new Map(files.tensors.map((t) => [t.name, t]))
    const applied = withReplacements(model)
    const scale = config.lora_alpha / config.r
    for (const [name, a] of byName) {
      const m = /^base_model\.model\.(.+)\.lora_A\.weight$/.exec(name)
      if (!m) continue
      const b = byName.get(`base_model.model.${m[1]}.lora_B.weight`)!
      const base = model.entry(`${m[1]}.weight`)
      const [rows, cols] = base.shape
      expect(a.shape).toEqual([config.r, cols])
      expect(b.shape).toEqual([rows, config.r])
      applied.replace(
        base.name,
        applyAdapter(
          await readTensorF32(base),
          await readTensorF32(a),
          await readTensorF32(b),
          rows,
          cols,
          config.r,
          scale,
        ),
      )
    }
    expect(Math.abs((await ppl(applied)) - mergedPpl) / mergedPpl).toBeLessThan(1e-5)
    // Exports never overwrite.
    await expect(exportPeftAdapter(out, adapters, model)).rejects.toMatchObject({ code: 'validation' })
  })
})
