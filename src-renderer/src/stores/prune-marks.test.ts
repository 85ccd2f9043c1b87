import { beforeEach, describe, expect, it } from 'vitest'
import { createPinia, setActivePinia } from 'pinia'
import { provideApi } from '../bridge'
import { FakeEngine } from '../testing/fake-engine'
import { headCells } from '../charts/heads-option'
import { layerBars } from '../charts/layers-option'
import { useAnalysisStore } from './analysis'
import { useCompressRunStore } from './compress-run'
import { useCompressStore } from './compress'
import { useModelStore } from './model'

let engine: FakeEngine
beforeEach(async () => {
  engine = new FakeEngine()
  provideApi(engine)
  setActivePinia(createPinia())
  await useModelStore().open('/models/a')
})

describe('marking heads and layers for pruning', () => {
  it('toggles marks, groups heads by layer, highlights them in the charts, and clears on a new model', async () => {
    const a = useAnalysisStore()
    a.toggleMarkedHead({ layer: 1, head: 3 })
    a.toggleMarkedHead({ layer: 0, head: 2 })
    a.toggleMarkedHead({ layer: 1, head: 0 })
    a.toggleMarkedHead({ layer: 0, head: 2 })
    expect(a.markedHeadMap()).toEqual({ 1: [0, 3] })
    const cells = headCells(
      [
        [1, 1, 1, 1],
        [1, 1, 1, 1],
      ],
      null,
      a.markedHeads,
    )
    expect(cells.filter((c) => c.itemStyle).map((c) => c.value.slice(0, 2))).toEqual([
      [0, 1],
      [3, 1],
    ])
    a.toggleMarkedLayer(3)
    a.toggleMarkedLayer(1)
    expect(a.markedLayers).toEqual([1, 3])
    expect(layerBars([0.1, 0.2, 0.3, 0.4], a.markedLayers).map((b) => !!b.itemStyle)).toEqual([
      false,
      true,
      false,
      true,
    ])
    await useModelStore().open('/models/b')
    expect(a.markedHeads).toEqual([])
    expect(a.markedLayers).toEqual([])
  })

  it('runs a marked selection as the recipe', async () => {
    const run = useCompressRunStore()
    const recipe = { steps: [{ method: 'drop_layers', params: { layers: [2] } }] }
    engine.onStart = (id) =>
      queueMicrotask(() =>
        engine.emit({ id, kind: 'compress', state: 'error', progress: 0, message: 'x', error: 'stopped by the test' }),
      )
    await run.runRecipe(recipe)
    expect(run.failure).toMatch(/stopped by the test/)
    expect(useCompressStore().recipe.steps[0]).toMatchObject({ method: 'drop_layers', params: { layers: [2] } })
    expect(engine.started.at(-1)?.spec).toMatchObject({
      kind: 'compress',
      recipe: { steps: [{ method: 'drop_layers' }] },
    })
  })
})
