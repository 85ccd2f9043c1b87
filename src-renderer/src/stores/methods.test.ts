import { beforeEach, describe, expect, it } from 'vitest'
import { createPinia, setActivePinia } from 'pinia'
import { provideApi } from '../bridge'
import { FakeEngine } from '../testing/fake-engine'
import { TEST_CATALOGUE } from '../testing/method-catalogue'
import { useErrorStore } from './errors'
import { useMethodsStore } from './methods'

let engine: FakeEngine

beforeEach(() => {
  engine = new FakeEngine()
  provideApi(engine)
  setActivePinia(createPinia())
})

describe('methods store', () => {
  it('asks the engine once, however many views load it, and derives the pruners from the kinds', async () => {
    const methods = useMethodsStore()
    expect(methods.catalogue).toEqual([])
    await Promise.all([methods.load(), methods.load()])
    await methods.load()
    expect(engine.listMethodsCalls).toBe(1)
    expect(methods.loaded).toBe(true)
    expect(methods.catalogue.map((m) => m.name)).toEqual(TEST_CATALOGUE.map((m) => m.name))
    expect(methods.pruneMethods).toEqual(['magnitude', 'wanda', 'sparsegpt'])
    expect(methods.byName('gptq')?.kind).toBe('quantize')
  })

  it('reports a failed load and asks again next time', async () => {
    const methods = useMethodsStore()
    engine.listMethods = async () => {
      engine.listMethodsCalls++
      throw new Error('engine gone')
    }
    await methods.load()
    expect(useErrorStore().errors.map((e) => e.message)).toEqual(['engine gone'])
    expect(methods.loaded).toBe(false)
    await methods.load()
    expect(engine.listMethodsCalls).toBe(2)
  })
})
