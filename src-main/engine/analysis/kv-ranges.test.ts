// The KV-cache analysis: the range recorder on a hand-built window, and the whole analysis on
// stories260K agreeing with plain perplexity runs (with and without the quantized cache).

import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { perplexity } from '../eval/perplexity'
import { kvCacheHooks, parseKvCacheSetting } from '../forward/kv-cache-quant'
import { loadModel } from '../model/loaded-model'
import { WorkerPool } from '../pool/worker-pool'
import { hasShared, referenceIds, shared, SKIP_SHARED } from '../testing/shared-data'
import { kvCacheAnalysis, kvCacheReport, kvRangeRecorder } from './kv-ranges'

describe('kv range recorder', () => {
  it('records per-channel absmax, mean vector range and the outlier ratio per layer and kv head', () => {
    const rec = kvRangeRecorder({ layers: 2, kvHeads: 2, headDim: 2 })
    // Layer 1, two tokens, heads [k0 k1 | k2 k3].
    const k = new Float32Array([1, -6, 0.5, 0.5, -2, 3, 0, -1])
    const v = new Float32Array([0, 1, 2, 2, 0, -1, 4, 0])
    const before = k.slice()
    rec.hooks.keysValues!(1, k, v, 2, 2, 2)
    expect(Array.from(k)).toEqual(Array.from(before))
    const [h0, h1] = rec.ranges().filter((r) => r.layer === 1)
    expect(h0.keyAbsMax).toEqual([2, 6])
    expect(h0.keyTokenRange).toBe((7 + 5) / 2)
    expect(h0.keyOutlierRatio).toBe(6 / 4)
    expect(h0.valueAbsMax).toEqual([0, 1])
    expect(h1.keyAbsMax).toEqual([0.5, 1])
    expect(h1.valueTokenRange).toBe((0 + 4) / 2)
    // Layer 0 saw nothing.
    expect(rec.ranges()[0].keyAbsMax).toEqual([0, 0])
  })

  it('writes the report field with llama.cpp flags for GGUF cache types', () => {
    const shape = { layers: 5, kvHeads: 4, headDim: 8 }
    const q8 = kvCacheReport(shape, parseKvCacheSetting('q8_0'), 1024)
    expect(q8.scheme).toBe('q8_0')
    expect(q8.llama_cpp).toMatch(/^--cache-type-k q8_0 --cache-type-v q8_0/)
    expect(q8.note).toMatch(/head_dim 8/)
    const token = kvCacheReport(shape, parseKvCacheSetting('token:4'), 1024)
    expect(token.llama_cpp).toBeNull()
    expect(token.saved_bytes).toBe((640 - 320) * 1024)
  })
})

describe.skipIf(!hasShared)(
  `KV-cache analysis of stories260K (${hasShared ? 'reference data present' : SKIP_SHARED})`,
  () => {
    let pool: WorkerPool
    beforeAll(async () => {
      pool = await WorkerPool.create({ threads: 2 })
    })
    afterAll(() => pool?.close())

    it('measures the same perplexities as plain runs and one range row per layer and kv head', async () => {
      const model = await loadModel(shared('models/stories260K'))
      const ids = referenceIds('tinystories_eval')
      const opts = { seqlen: 256, maxWindows: 6 }
      const a = await kvCacheAnalysis(pool, model, ids, { ...opts, settings: ['token:4', 'q4_0'], contextLength: 2048 })
      const plain = await perplexity(pool, model, ids, opts)
      const token4 = await perplexity(pool, model, ids, {
        ...opts,
        hooks: kvCacheHooks(parseKvCacheSetting('token:4')),
      })
      expect(a.windows).toBe(6)
      expect(a.baselinePpl).toBe(plain.ppl)
      expect(a.schemes.map((s) => s.setting)).toEqual(['token:4', 'q4_0'])
      expect(a.schemes[0].ppl).toBe(token4.ppl)
      expect(a.schemes[0].ppl!).toBeGreaterThan(plain.ppl)
      expect(a.schemes[1].note).toMatch(/llama\.cpp would refuse/)
      expect(a.schemes[1].llamaCpp).toMatch(/--cache-type-k q4_0/)
      expect(a.baselineBytesPerToken).toBe(640)
      expect(a.heads).toHaveLength(5 * 4)
      for (const h of a.heads) {
        expect(h.keyAbsMax).toHaveLength(8)
        expect(Math.max(...h.keyAbsMax)).toBeGreaterThan(0)
        expect(h.keyOutlierRatio).toBeGreaterThanOrEqual(1)
      }
    }, 600_000)
  },
)
