import { describe, expect, it } from 'vitest'
import { DEFAULT_KV_FORM, kvCacheSpec, kvSettingList } from './kv-cache-request'

describe('KV-cache job spec', () => {
  it('splits settings on commas and spaces', () => {
    expect(kvSettingList(' token:4, kivi:2  q8_0,,')).toEqual(['token:4', 'kivi:2', 'q8_0'])
    expect(kvSettingList('   ')).toEqual([])
  })

  it('leaves settings and windows out when the form leaves them empty', () => {
    const spec = kvCacheSpec('m1', { ...DEFAULT_KV_FORM, maxWindows: null })
    expect(spec).toEqual({ kind: 'kv-cache', modelId: 'm1', seqlen: 256, contextLength: 4096 })
    const chosen = kvCacheSpec('m1', { settings: 'token:8 q4_0', seqlen: 128, maxWindows: 8, contextLength: 512 })
    expect(chosen).toEqual({
      kind: 'kv-cache',
      modelId: 'm1',
      seqlen: 128,
      contextLength: 512,
      maxWindows: 8,
      settings: ['token:8', 'q4_0'],
    })
  })
})
