import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { TensorInfo } from '../../contract/api'
import { openModelFiles } from '../formats/open'
import { WorkerPool } from '../pool/worker-pool'
import { hasShared, shared, SKIP_SHARED } from '../testing/shared-data'
import { ggufBlockStorage } from './gguf-block-storage'
import { inspectTensor } from './tensor-detail'

describe.skipIf(!hasShared)(
  `tensor detail with storage (${hasShared ? 'llama.cpp golden Q4_K file' : SKIP_SHARED})`,
  () => {
    let pool: WorkerPool
    beforeAll(async () => {
      pool = await WorkerPool.create({ threads: 2 })
    })
    afterAll(() => pool?.close())

    it('a Q4_K tensor: the decoded view and its block storage side by side', async () => {
      const files = await openModelFiles(shared('reference', 'gguf-golden', 'small-llama-Q4_K.gguf'))
      const entry = files.tensors.find((t) => t.dtype === 'Q4_K' && t.shape.length === 2)!
      const info: TensorInfo = { ...entry, role: 'other', layer: null }
      const detail = await inspectTensor(pool, entry, info, { bins: 32 })
      expect(detail.stats.count).toBe(entry.shape[0] * entry.shape[1])
      expect(detail.storage).toEqual(await ggufBlockStorage(entry))
      expect(detail.storage?.kind).toBe('gguf-blocks')
    })

    it('an F32 tensor has no storage of its own', async () => {
      const files = await openModelFiles(shared('reference', 'gguf-golden', 'small-llama-Q4_K.gguf'))
      const entry = files.tensors.find((t) => t.dtype === 'F32')!
      const info: TensorInfo = { ...entry, role: 'other', layer: null }
      expect((await inspectTensor(pool, entry, info, { bins: 8 })).storage).toBeUndefined()
    })
  },
)
