import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { createPinia, setActivePinia } from 'pinia'
import { isProxy } from 'vue'
import type { RecipeDoc, RecipePreset, TensorInfo } from '@contract/api'
import { provideApi } from '../bridge'
import { FakeEngine, settle } from '../testing/fake-engine'
import { CHECK_DELAY_MS, useCompressStore, type RecipeFile } from './compress'
import { useErrorStore } from './errors'
import { subjectOf } from './jobs'
import { useModelStore } from './model'

const q0: TensorInfo = {
  name: 'model.layers.0.self_attn.q_proj.weight',
  shape: [4, 4],
  dtype: 'F32',
  byteLength: 64,
  role: 'q',
  layer: 0,
}
const down0: TensorInfo = {
  name: 'model.layers.0.mlp.down_proj.weight',
  shape: [4, 8],
  dtype: 'F32',
  byteLength: 128,
  role: 'down',
  layer: 0,
}
const norm0: TensorInfo = {
  name: 'model.layers.0.input_layernorm.weight',
  shape: [4],
  dtype: 'F32',
  byteLength: 16,
  role: 'attn_norm',
  layer: 0,
}

const gptqPreset: RecipePreset = {
  id: 'gptq-4bit',
  name: 'GPTQ 4-bit',
  description: 'd',
  recipe: {
    calibration: { samples: 128, seqlen: 256, seed: 0 },
    steps: [{ method: 'gptq', targets: { include: [], exclude: [] }, params: { bits: 4, damp: 0.01 } }],
    overrides: {},
  },
}

let engine: FakeEngine

beforeEach(() => {
  engine = new FakeEngine()
  engine.tensors = [norm0, q0, down0]
  engine.presets = [gptqPreset]
  provideApi(engine)
  setActivePinia(createPinia())
})

afterEach(() => {
  vi.useRealTimers()
})

async function withModel(): Promise<void> {
  await useModelStore().open('/models/a')
}

function file(name: string, text: string, size = text.length): RecipeFile & { reads: number } {
  const f = {
    name,
    size,
    reads: 0,
    text: async () => {
      f.reads++
      return text
    },
  }
  return f
}

describe('checking the recipe', () => {
  it('checks a burst of edits once, after the typing pauses, then predicts for the open model', async () => {
    await withModel()
    vi.useFakeTimers()
    const compress = useCompressStore()
    compress.setParam(0, 'bits', 3)
    compress.setParam(0, 'bits', 2)
    compress.setParam(0, 'group_size', 32)
    expect(compress.checking).toBe(true)
    await vi.advanceTimersByTimeAsync(CHECK_DELAY_MS - 10)
    expect(engine.checked).toEqual([])
    await vi.advanceTimersByTimeAsync(20)
    expect(engine.checked).toHaveLength(1)
    expect(engine.checked[0]).toMatchObject({ steps: [{ method: 'rtn', params: { bits: 2, group_size: 32 } }] })
    // What crosses the bridge is plain data: Electron's structured clone refuses Vue proxies.
    expect(isProxy(engine.checked[0])).toBe(false)
    expect(compress.checking).toBe(false)
    expect(compress.recipeError).toBeNull()
    expect(engine.predicted).toEqual([{ modelId: 'id:/models/a', recipe: compress.recipe }])
    expect(compress.prediction?.bitsPerWeight).toBe(2.5)
  })

  it("shows the engine's objection, drops the stale prediction, and clears both once fixed", async () => {
    await withModel()
    const compress = useCompressStore()
    await compress.validate()
    expect(compress.prediction).not.toBeNull()
    compress.setParam(0, 'bits', 9)
    await compress.validate()
    expect(compress.recipeError).toBe('recipe step 1 (rtn): params.bits must be an integer in [2, 8] (got 9)')
    expect(compress.shownError).toBe(compress.recipeError)
    expect(compress.prediction).toBeNull()
    compress.setParam(0, 'bits', undefined)
    await compress.validate()
    expect(compress.recipeError).toBeNull()
    expect(compress.prediction?.bitsPerWeight).toBe(4.5)
  })

  it('lets the newest check win when an older one answers late', async () => {
    const compress = useCompressStore()
    let open!: () => void
    engine.checkGate = new Promise((r) => (open = r))
    compress.setMethod(0, 'awq')
    const slow = compress.validate()
    await settle()
    engine.checkGate = null
    compress.setMethod(0, 'gptq')
    await compress.validate()
    open()
    await slow
    expect(compress.recipeError).toBeNull()
    expect(compress.recipe.steps[0].method).toBe('gptq')
  })

  it('has nothing to predict without a model, and predicts when one opens', async () => {
    const compress = useCompressStore()
    await compress.init()
    expect(compress.presets).toEqual([gptqPreset])
    expect(compress.prediction).toBeNull()
    await withModel()
    await settle()
    expect(compress.prediction?.bitsPerWeight).toBe(4.5)
  })
})

describe('presets, files and steps', () => {
  it('loads a preset as a copy and notices when it is edited', async () => {
    const compress = useCompressStore()
    await compress.loadPresets()
    compress.choosePreset('gptq-4bit')
    expect(compress.recipe).toEqual(gptqPreset.recipe)
    expect(compress.recipe).not.toBe(gptqPreset.recipe)
    expect(compress.presetModified).toBe(false)
    compress.setParam(0, 'bits', 3)
    expect(compress.presetModified).toBe(true)
    expect(gptqPreset.recipe.steps[0].params!.bits).toBe(4)
  })

  it("loads a recipe file through the engine's validator, and keeps the editor when it is bad", async () => {
    const compress = useCompressStore()
    const doc: RecipeDoc = { steps: [{ method: 'gptq', params: { bits: 3 } }] }
    expect(await compress.loadRecipeFile(file('mine.yaml', JSON.stringify(doc)))).toBe(true)
    expect(engine.checked.at(-1)).toBe(JSON.stringify(doc))
    expect(compress.recipe.steps[0]).toEqual({
      method: 'gptq',
      targets: { include: [], exclude: [] },
      params: { bits: 3 },
    })
    expect(compress.presetId).toBe('')

    const kept = compress.recipe
    expect(await compress.loadRecipeFile(file('bad.yaml', '{"steps": [{"method": "magic"}]}'))).toBe(false)
    expect(compress.recipe).toBe(kept)
    expect(compress.shownError).toBe(
      'bad.yaml: recipe step 1: unknown method "magic" (known: rtn, gptq, wanda, drop_layers, prune_heads)',
    )
    expect(useErrorStore().errors.map((e) => e.message)).toEqual([compress.shownError])
    const shown = compress.shownError
    // The engine calls text it was handed "recipe"; the file's own name replaces that.
    await compress.loadRecipeFile(file('junk.yaml', '{{{'))
    expect(compress.shownError).toBe('junk.yaml: is not valid YAML or JSON')
    expect(shown).toContain('bad.yaml')
    // The next edit is about the editor's recipe again.
    compress.setParam(0, 'bits', 4)
    expect(compress.loadError).toBeNull()
  })

  it('refuses a file over 1 MB without reading it', async () => {
    const compress = useCompressStore()
    const big = file('huge.yaml', 'x', 2 << 20)
    expect(await compress.loadRecipeFile(big)).toBe(false)
    expect(big.reads).toBe(0)
    expect(compress.loadError).toContain('huge.yaml')
  })

  it('saves what the engine writes as YAML', async () => {
    const compress = useCompressStore()
    compress.setParam(0, 'bits', 3)
    const text = await compress.recipeYaml()
    expect(text).toBe(`# yaml\n${JSON.stringify(compress.recipe)}\n`)
  })

  it('keeps the current step the same step through moves and removals', () => {
    const compress = useCompressStore()
    compress.addStep('gptq')
    compress.addStep('rtn')
    expect(compress.currentStep).toBe(2)
    compress.chooseStep(1)
    compress.moveStep(1, -1)
    expect(compress.recipe.steps.map((s) => s.method)).toEqual(['gptq', 'rtn', 'rtn'])
    expect(compress.currentStep).toBe(0)
    compress.moveStep(1, -1)
    expect(compress.currentStep).toBe(1)
    compress.removeStep(0)
    expect(compress.currentStep).toBe(0)
    expect(compress.step?.method).toBe('gptq')
    compress.chooseStep(1)
    compress.removeStep(1)
    expect(compress.currentStep).toBe(0)
  })

  it("names the recipe's methods in the job bar", () => {
    expect(
      subjectOf({
        kind: 'compress',
        modelId: 'm',
        recipe: { steps: [{ method: 'awq' }, { method: 'gptq' }] },
        seqlen: 512,
      }),
    ).toBe('awq → gptq · eval seqlen 512')
  })
})

describe('targets by clicking', () => {
  it('adds and removes tensors of the current step as exact names', async () => {
    await withModel()
    const compress = useCompressStore()
    compress.addStep('gptq')
    expect(compress.targeted).toEqual(new Set([q0.name, down0.name]))
    expect(compress.toggleTarget(down0.name)).toBe(true)
    expect(compress.recipe.steps[0].targets?.include ?? []).toEqual([])
    expect(compress.recipe.steps[1].targets!.include).toEqual(['^model\\.layers\\.0\\.mlp\\.down_proj\\.weight$'])
    expect(compress.picked).toEqual(new Set([down0.name]))
    expect(compress.targeted).toEqual(new Set([down0.name]))
    compress.toggleTarget(down0.name)
    expect(compress.picked).toEqual(new Set())
  })

  it('explains instead of adding a tensor the engine would never compress', async () => {
    await withModel()
    const compress = useCompressStore()
    expect(compress.toggleTarget(norm0.name)).toBe(false)
    expect(compress.recipe.steps[0].targets?.include ?? []).toEqual([])
    expect(useErrorStore().errors[0].message).toContain('cannot be a compression target')
  })

  it('sets per-tensor bits as overrides by module name', () => {
    const compress = useCompressStore()
    compress.setOverrideBits('model.layers.0.mlp.down_proj', 8)
    expect(compress.recipe.overrides).toEqual({ 'model.layers.0.mlp.down_proj': { bits: 8 } })
    compress.removeOverride('model.layers.0.mlp.down_proj')
    expect(compress.recipe.overrides).toBeUndefined()
  })
})

describe('params typed as JSON that does not parse', () => {
  it('shows the error in place of "valid" and keeps the recipe from running until fixed', async () => {
    const compress = useCompressStore()
    compress.setDraftError(0, 'not valid JSON: Unexpected token')
    expect(compress.draftError).toBe('step 1: params not valid JSON: Unexpected token')
    expect(compress.shownError).toBe(compress.draftError)
    compress.setDraftError(0, null)
    expect(compress.draftError).toBeNull()
  })
})
