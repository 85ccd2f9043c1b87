// runLayerStep holds one input group at a time for a group-wise method (issue #15: a 7B layer's four
// Hessians, f32 weights and their originals did not fit 4 GB together). On the bundled stories260K with
// GPTQ: when a group is compressed, every earlier group's Hessian has been dropped and its weights are
// already in the view; the results are those of compressing each group on its own, outside the pipeline.

import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { calibrationWindows } from '../calibration/windows'
import { demoTextIds, loadDemoModel } from '../eval/testing/demo-model'
import { readTensorF32 } from '../formats/read'
import type { LoadedModel } from '../model/loaded-model'
import { withReplacements } from '../model/model-view'
import { WorkerPool } from '../pool/worker-pool'
import { CONCURRENT_GROUPS_BYTES, runLayerStep } from './layer-step'
import { gptq, type GptqParams } from './methods/gptq'
import type { CompressionMethod, GroupContext, LinearOutcome } from './methods/method'
import type { UniformGridRecord } from './quant/record'
import { validateRecipe } from './recipe/recipe'

describe('runLayerStep, group by group', () => {
  let pool: WorkerPool
  let model: LoadedModel
  let windows: Int32Array[]
  beforeAll(async () => {
    pool = await WorkerPool.create({ threads: 2 })
    model = await loadDemoModel()
    windows = calibrationWindows(await demoTextIds(model, 'tinystories_calib', 20_000), {
      samples: 2,
      seqlen: 32,
      seed: 0,
    })
  })
  afterAll(() => pool?.close())

  it("drops each group's Hessian and hands its weights to the view before the next group is compressed", async () => {
    const view = withReplacements(model)
    const recipe = validateRecipe({
      steps: [{ method: 'gptq', targets: { include: ['layers\\.1\\.'] }, params: { bits: 4, group_size: 32 } }],
    })
    const seen: GroupContext[] = []
    // What each group's compression saw of the groups before it, and its own Hessian (copied, to check the result).
    const earlier: { hessians: (Float64Array | null)[]; replaced: boolean[] }[] = []
    const own: { H: Float64Array; weights: Map<string, Float32Array> }[] = []
    const watched: CompressionMethod<unknown> = {
      ...(gptq as CompressionMethod<unknown>),
      async compressGroup(ctx: GroupContext): Promise<LinearOutcome[]> {
        earlier.push({
          hessians: seen.map((g) => g.input!.hessian),
          replaced: seen.flatMap((g) => g.linears.map((l) => view.replacedNames().has(l.name))),
        })
        own.push({
          H: ctx.input!.hessian!.slice(),
          weights: new Map(ctx.linears.map((l) => [l.name, l.weight.slice()])),
        })
        seen.push(ctx)
        return gptq.compressGroup(ctx as GroupContext<GptqParams>)
      },
    }
    const records = new Map<string, UniformGridRecord>()
    // A layer this small would have its groups compressed side by side: 0 asks for one group at a time.
    const step = {
      pool,
      view,
      recipe,
      index: 0,
      method: watched,
      options: { windows },
      records,
      concurrentGroupsBytes: 0,
    }
    const tensors = await runLayerStep(step)

    expect(seen.map((g) => g.group)).toHaveLength(4)
    expect(tensors).toHaveLength(7)
    for (const [k, e] of earlier.entries()) {
      expect(e.hessians, `group ${k}`).toEqual(Array(k).fill(null))
      expect(e.replaced.every(Boolean), `group ${k}`).toBe(true)
    }
    expect(seen.every((g) => g.input!.hessian === null)).toBe(true)

    // The same bits as GPTQ on each group alone, from the Hessian and weights the pipeline gave it.
    for (const [k, g] of seen.entries()) {
      const linears = g.linears.map((l) => ({ ...l, weight: own[k].weights.get(l.name)!.slice() }))
      await gptq.compressGroup({ ...g, linears, input: { ...g.input!, hessian: own[k].H } } as GroupContext<GptqParams>)
      for (const l of linears) expect(await readTensorF32(view.entry(l.name)), l.name).toEqual(l.weight)
    }
  })

  it("compresses a small layer's groups side by side, with the same results as one at a time", async () => {
    const recipe = validateRecipe({
      steps: [{ method: 'gptq', targets: { include: ['layers\\.[02]\\.'] }, params: { bits: 4, group_size: 32 } }],
    })
    const run = async (concurrentGroupsBytes: number) => {
      const view = withReplacements(model)
      const records = new Map<string, UniformGridRecord>()
      const method = gptq as CompressionMethod<unknown>
      let live = 0,
        most = 0
      const counted: CompressionMethod<unknown> = {
        ...method,
        async compressGroup(ctx: GroupContext): Promise<LinearOutcome[]> {
          most = Math.max(most, ++live)
          try {
            return await method.compressGroup(ctx)
          } finally {
            live--
          }
        },
      }
      const options = { windows }
      const tensors = await runLayerStep({
        pool,
        view,
        recipe,
        index: 0,
        method: counted,
        options,
        records,
        concurrentGroupsBytes,
      })
      const weights = new Map<string, Float32Array>()
      for (const t of tensors) weights.set(t.name, await readTensorF32(view.entry(t.name)))
      return { tensors, weights, most }
    }
    const alone = await run(0)
    const together = await run(CONCURRENT_GROUPS_BYTES)
    expect(alone.most).toBe(1)
    expect(together.most).toBe(4)
    expect(together.tensors.map((t) => t.name)).toEqual(alone.tensors.map((t) => t.name))
    expect(together.tensors).toEqual(alone.tensors)
    for (const [name, w] of alone.weights) expect(together.weights.get(name), name).toEqual(w)
  })
})
