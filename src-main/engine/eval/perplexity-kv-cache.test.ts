// Issue #16's KV-cache targets: perplexity of stories260K on the TinyStories eval at seqlen 256 with the
// cache quantized (keys after RoPE), against the PyTorch harness' references, within 0.5%.

import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { kvCacheHooks, parseKvCacheSetting } from '../forward/kv-cache-quant'
import { loadModel } from '../model/loaded-model'
import { WorkerPool } from '../pool/worker-pool'
import { hasShared, referenceIds, shared, SKIP_SHARED } from '../testing/shared-data'
import { perplexity } from './perplexity'

describe.skipIf(!hasShared)(
  `KV-cache perplexity targets (${hasShared ? 'reference data present' : SKIP_SHARED})`,
  () => {
    let pool: WorkerPool
    beforeAll(async () => {
      pool = await WorkerPool.create({ threads: 2 })
    })
    afterAll(() => pool?.close())

    // Issue #16, PyTorch harness: stories260K, tinystories_eval at seqlen 256, within 0.5%.
    const TARGETS: [string, number][] = [
      ['token:8', 5.1435],
      ['token:4', 8.1506],
      ['kivi:4', 5.3285],
    ]
    for (const [setting, target] of TARGETS) {
      it(`${setting}: ppl ${target} within 0.5%`, async () => {
        const model = await loadModel(shared('models/stories260K'))
        const s = parseKvCacheSetting(setting)
        const r = await perplexity(pool, model, referenceIds('tinystories_eval'), {
          seqlen: 256,
          hooks: kvCacheHooks(s),
        })
        expect(Math.abs(r.ppl / target - 1)).toBeLessThan(5e-3)
      }, 600_000)
    }
  },
)
