import { beforeEach, describe, expect, it } from 'vitest'
import { createPinia, setActivePinia } from 'pinia'
import { provideApi } from '../bridge'
import { FakeEngine, tensorInfo } from '../testing/fake-engine'
import { useErrorStore } from './errors'
import { useModelStore } from './model'

let engine: FakeEngine

beforeEach(() => {
  engine = new FakeEngine()
  provideApi(engine)
  setActivePinia(createPinia())
})

describe('model store', () => {
  it('opens the demo on first start when the host has one', async () => {
    const model = useModelStore()
    await model.init()
    expect(engine.opened).toEqual(['demo'])
    expect(model.summary?.id).toBe('id:demo')
    expect(model.tensors).toEqual([tensorInfo])
    expect(model.displayName).toBe('demo')
  })

  it('prefers the model named on the command line, and opens nothing when neither exists', async () => {
    engine.info = { ...engine.info, startupPath: '/models/tiny' }
    await useModelStore().init()
    expect(engine.opened).toEqual(['/models/tiny'])

    setActivePinia(createPinia())
    engine.opened = []
    engine.info = { ...engine.info, startupPath: null, demoPath: null }
    await useModelStore().init()
    expect(engine.opened).toEqual([])
  })

  it('reports a failed open with its path and keeps the model that was open', async () => {
    const model = useModelStore()
    const errors = useErrorStore()
    await model.open('/models/a')
    expect(await model.open('/missing/model.safetensors')).toBe(false)
    expect(model.summary?.path).toBe('/models/a')
    expect(model.error).toContain('/missing/model.safetensors')
    expect(errors.errors.map((e) => e.message)).toEqual(['/missing/model.safetensors: no such file or folder'])
    expect(model.loading).toBe(false)
    // Opening another model takes the banner about the failed one away.
    expect(await model.open('/models/b')).toBe(true)
    expect(errors.errors).toEqual([])
  })

  it('lets the newest open win when an older one finishes later', async () => {
    const model = useModelStore()
    let release!: () => void
    engine.gates.set('/slow', new Promise((r) => (release = r)))
    const slow = model.open('/slow')
    await model.open('/fast')
    release()
    await slow
    expect(model.summary?.path).toBe('/fast')
  })

  it('refuses an empty path without calling the engine', async () => {
    const model = useModelStore()
    expect(await model.open('   ')).toBe(false)
    expect(engine.opened).toEqual([])
    expect(useErrorStore().errors).toHaveLength(1)
  })
})
