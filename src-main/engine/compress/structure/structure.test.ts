// Structural steps on the real stories260K (bundled demo; 5 layers, 8 query heads sharing 4 key/value
// heads): the smaller model must compute what the masked or skipped original computes, export with a
// consistent config.json and re-open with the same perplexity.

import { demoTextIds, loadDemoModel } from '../../eval/testing/demo-model'
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { headImportance } from '../../analysis/head-importance'
import { layerImportance } from '../../analysis/layer-importance'
import { calibrationWindows } from '../../calibration/windows'
import { perplexity } from '../../eval/perplexity'
import { writeDenseSafetensors } from '../../export/dense-safetensors'
import { readTensorF32 } from '../../formats/read'
import { createForward } from '../../forward'
import { loadModel, type LoadedModel } from '../../model/loaded-model'
import { WorkerPool } from '../../pool/worker-pool'
import { runRecipe } from '../pipeline'
import { validateRecipe } from '../recipe/recipe'

const tmp = mkdtempSync(path.join(os.tmpdir(), 'whittle-structure-'))
afterAll(() => rmSync(tmp, { recursive: true, force: true }))

describe('structural pruning of stories260K', () => {
  let pool: WorkerPool
  let model: LoadedModel
  let windows: Int32Array[]
  let evalIds: Int32Array

  beforeAll(async () => {
    pool = await WorkerPool.create({ threads: 2 })
    model = await loadDemoModel()
    const ids = await demoTextIds(model, 'tinystories_calib')
    windows = calibrationWindows(ids, { samples: 8, seqlen: 128, seed: 0 })
    evalIds = await demoTextIds(model, 'tinystories_eval')
  })
  afterAll(() => pool?.close())

  const ppl = async (m: LoadedModel): Promise<number> =>
    (await perplexity(pool, m, evalIds, { seqlen: 256, maxWindows: 24 })).ppl
  async function probe<T>(
    m: LoadedModel,
    run: (f: Awaited<ReturnType<typeof createForward>>) => Promise<T>,
  ): Promise<T> {
    const f = await createForward(pool, m)
    try {
      return await run(f)
    } finally {
      f.close()
    }
  }

  it('drop_layers: the smaller model computes what skipping the block computes, and exports consistently', async () => {
    const r = await runRecipe(
      pool,
      model,
      validateRecipe({ steps: [{ method: 'drop_layers', params: { layers: [2] } }] }),
      { windows },
    )
    expect(r.view.arch.layers).toBe(4)
    expect(r.view.tensors.some((t) => t.name === 'model.layers.4.mlp.up_proj.weight')).toBe(false)
    // Old layer 3 is new layer 2, byte for byte.
    expect(Array.from(await readTensorF32(r.view.entry('model.layers.2.mlp.up_proj.weight')))).toEqual(
      Array.from(await readTensorF32(model.entry('model.layers.3.mlp.up_proj.weight'))),
    )
    const original = await probe(model, (f) => layerImportance(f, windows))
    const dropped = await probe(r.view, (f) => layerImportance(f, windows))
    expect(dropped.baselineNll).toBeCloseTo(original.baselineNll + original.skipDelta[2], 5)

    const out = path.join(tmp, 'dropped')
    mkdirSync(out)
    await writeDenseSafetensors(r.view, out)
    const config = JSON.parse(readFileSync(path.join(out, 'config.json'), 'utf8'))
    expect(config.num_hidden_layers).toBe(4)
    const reopened = await loadModel(out)
    expect(reopened.summary.layers).toBe(4)
    expect(await ppl(reopened)).toBe(await ppl(r.view))
  })

  it('prune_heads physical equals masked for whole key/value groups, and exports a smaller model', async () => {
    const heads = Object.fromEntries(Array.from({ length: 5 }, (_, l) => [String(l), [2, 3]]))
    const masked = await runRecipe(
      pool,
      model,
      validateRecipe({ steps: [{ method: 'prune_heads', params: { mode: 'masked', heads } }] }),
      { windows },
    )
    const physical = await runRecipe(
      pool,
      model,
      validateRecipe({ steps: [{ method: 'prune_heads', params: { mode: 'physical', heads } }] }),
      { windows },
    )
    expect(physical.view.arch).toMatchObject({ heads: 6, kvHeads: 3, headDim: 8, hiddenSize: 64 })
    expect(physical.view.entry('model.layers.0.self_attn.q_proj.weight').shape).toEqual([48, 64])
    expect(physical.view.entry('model.layers.0.self_attn.k_proj.weight').shape).toEqual([24, 64])
    expect(physical.view.entry('model.layers.0.self_attn.o_proj.weight').shape).toEqual([64, 48])
    // Masked: heads 2 and 3 (key/value head 1) zeroed, shapes kept; reported per tensor.
    const q = await readTensorF32(masked.view.entry('model.layers.1.self_attn.q_proj.weight'))
    expect(q.subarray(16 * 64, 32 * 64).every((x) => x === 0)).toBe(true)
    expect(q.subarray(0, 16 * 64).some((x) => x !== 0)).toBe(true)
    const k = await readTensorF32(masked.view.entry('model.layers.1.self_attn.k_proj.weight'))
    expect(k.subarray(8 * 64, 16 * 64).every((x) => x === 0)).toBe(true)
    expect(
      masked.tensors
        .filter((t) => t.layer === 1)
        .map((t) => t.role)
        .sort(),
    ).toEqual(['k', 'o', 'q', 'v'])
    expect(masked.tensors.find((t) => t.role === 'q')!.sparsity).toBeCloseTo(0.25, 12)

    const a = await probe(masked.view, (f) => headImportance(f, masked.view, windows.slice(0, 2)))
    const b = await probe(physical.view, (f) => headImportance(f, physical.view, windows.slice(0, 2)))
    expect(Math.abs(b.baselineNll / a.baselineNll - 1)).toBeLessThan(1e-5)

    const out = path.join(tmp, 'fewer-heads')
    mkdirSync(out)
    await writeDenseSafetensors(physical.view, out)
    const config = JSON.parse(readFileSync(path.join(out, 'config.json'), 'utf8'))
    expect(config).toMatchObject({ num_attention_heads: 6, num_key_value_heads: 3, head_dim: 8, hidden_size: 64 })
    const reopened = await loadModel(out)
    expect(await ppl(reopened)).toBe(await ppl(physical.view))
    expect(reopened.summary.parameterCount).toBeLessThan(model.summary.parameterCount)
  })

  it('ranks by importance when given a count, and refuses what it cannot do', async () => {
    const r = await runRecipe(
      pool,
      model,
      validateRecipe({ steps: [{ method: 'drop_layers', params: { count: 1 } }] }),
      { windows },
    )
    expect(r.view.arch.layers).toBe(4)
    const byCount = await runRecipe(
      pool,
      model,
      validateRecipe({ steps: [{ method: 'prune_heads', params: { mode: 'physical', count: 2, by: 'proxy' } }] }),
      { windows },
    )
    expect(byCount.view.arch.heads).toBe(6)
    const run = (params: Record<string, unknown>, method = 'prune_heads') =>
      runRecipe(pool, model, validateRecipe({ steps: [{ method, params }] }), { windows })
    await expect(run({ mode: 'physical', heads: { 0: [0, 1] } })).rejects.toThrow(
      /must leave every layer with the same heads/,
    )
    await expect(
      run({ mode: 'physical', heads: Object.fromEntries([0, 1, 2, 3, 4].map((l) => [l, [0, 2, 3]])) }),
    ).rejects.toThrow(/cannot be removed physically/)
    await expect(run({ mode: 'masked', heads: { 0: [9] } })).rejects.toThrow(/head 9 of layer 0 does not exist/)
    await expect(run({ layers: [5] }, 'drop_layers')).rejects.toThrow(/layer 5 does not exist/)
    await expect(run({ layers: [0, 1, 2, 3, 4] }, 'drop_layers')).rejects.toThrow(/leaves no model/)
    expect(() => validateRecipe({ steps: [{ method: 'drop_layers', params: { layers: [1], count: 1 } }] })).toThrow(
      /exactly one of layers/,
    )
  })
})
