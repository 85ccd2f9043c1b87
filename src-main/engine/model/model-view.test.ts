import { describe, expect, it } from 'vitest'
import { readTensorF32 } from '../formats/read'
import { hasShared, shared, SKIP_SHARED } from '../testing/shared-data'
import { loadModel } from './loaded-model'
import { withReplacements } from './model-view'

describe.skipIf(!hasShared)(`model views (${hasShared ? 'reference data present' : SKIP_SHARED})`, () => {
  it('serves replacements from memory, then from the spill file, without touching the original', async () => {
    const model = await loadModel(shared('models/stories260K'))
    const view = withReplacements(model)
    const name = 'model.layers.0.mlp.down_proj.weight'
    const original = await readTensorF32(model.entry(name))
    const values = original.map((v, i) => v + i * 1e-3)
    view.replace(name, values)
    expect(Array.from(await readTensorF32(view.entry(name)))).toEqual(Array.from(values))
    await view.spillIfOver(0)
    expect(view.replaced().size).toBe(0)
    expect(view.replacedNames().has(name)).toBe(true)
    expect(view.entry(name).data).toBeUndefined()
    expect(Array.from(await readTensorF32(view.entry(name)))).toEqual(Array.from(values))
    expect(Array.from(await readTensorF32(model.entry(name)))).toEqual(Array.from(original))
    view.dispose()
  })
})
