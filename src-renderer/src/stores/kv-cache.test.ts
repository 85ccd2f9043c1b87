import { beforeEach, describe, expect, it } from 'vitest'
import { createPinia, setActivePinia } from 'pinia'
import type { KvCacheAnalysis } from '@contract/api'
import { provideApi } from '../bridge'
import { FakeEngine, settle } from '../testing/fake-engine'
import { useKvCacheStore } from './kv-cache'
import { useModelStore } from './model'

const analysis: KvCacheAnalysis = {
  seqlen: 256,
  windows: 64,
  contextLength: 4096,
  layers: 1,
  kvHeads: 1,
  headDim: 2,
  baselinePpl: 5.14,
  baselineBytesPerToken: 8,
  heads: [
    {
      layer: 0,
      head: 0,
      keyAbsMax: [1, 9],
      valueAbsMax: [1, 1],
      keyTokenRange: 4,
      valueTokenRange: 1,
      keyOutlierRatio: 1.8,
      valueOutlierRatio: 1,
    },
  ],
  schemes: [
    { setting: 'token:4', ppl: 8.15, keyBits: 20, valueBits: 20, bytesPerToken: 10, savedBytes: -8192, llamaCpp: null },
  ],
}

let engine: FakeEngine

beforeEach(() => {
  engine = new FakeEngine()
  provideApi(engine)
  setActivePinia(createPinia())
})

describe('KV-cache analysis store', () => {
  it('sends the form as a kv-cache job and keeps the result until another model opens', async () => {
    await useModelStore().open('/models/a')
    const kv = useKvCacheStore()
    kv.form.settings = 'token:4'
    const done = kv.run()
    await settle()
    expect(kv.slot.running).toBe(true)
    expect(engine.started.map((s) => s.spec)).toEqual([
      {
        kind: 'kv-cache',
        modelId: 'id:/models/a',
        seqlen: 256,
        contextLength: 4096,
        maxWindows: 64,
        settings: ['token:4'],
      },
    ])
    engine.emit({ id: 'job1', state: 'done', progress: 1, message: 'done', kind: 'kv-cache', result: analysis })
    await done
    expect(kv.slot.running).toBe(false)
    expect(kv.slot.result?.schemes[0].ppl).toBe(8.15)
    await useModelStore().open('/models/b')
    await settle()
    expect(kv.slot.result).toBeNull()
  })

  it('shows a failed job as its failure', async () => {
    await useModelStore().open('/models/a')
    const kv = useKvCacheStore()
    const done = kv.run()
    await settle()
    engine.emit({ id: 'job1', state: 'error', progress: 0, message: 'failed', kind: 'kv-cache', error: 'bad setting' })
    await done
    expect(kv.slot.result).toBeNull()
    expect(kv.slot.failure).toMatch(/bad setting/)
  })
})
