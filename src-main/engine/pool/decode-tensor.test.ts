// The WASM decode path gives the TS reference readers' bits exactly, for every dtype a model here holds.

import { mkdtempSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { readGguf } from '../formats/gguf'
import { readTensorF32 } from '../formats/read'
import { loadModel } from '../model/loaded-model'
import { generateLlamaModel } from '../synthetic/generate'
import { WhittleError } from '../errors'
import { hasShared, shared } from '../testing/shared-data'
import { decodeTensorF32 } from './decode-tensor'
import type { Region } from './memory-arena'
import { WorkerPool } from './worker-pool'

const tmp = mkdtempSync(path.join(os.tmpdir(), 'whittle-decode-'))
let pool: WorkerPool
beforeAll(async () => {
  pool = await WorkerPool.create({ threads: 2 })
})
afterAll(async () => {
  await pool?.close()
  rmSync(tmp, { recursive: true, force: true })
})

const bits = (a: Float32Array): number[] => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length))

describe('decodeTensorF32', () => {
  it('BF16 and F16 safetensors: the same bits as readTensorF32', async () => {
    for (const dtype of ['BF16', 'F16'] as const) {
      const dir = path.join(tmp, dtype)
      await generateLlamaModel(dir, 'tiny-llama-test', { dtype, seed: 5 })
      const model = await loadModel(dir)
      for (const t of model.files.tensors)
        expect(bits(await decodeTensorF32(pool, t)), t.name).toEqual(bits(await readTensorF32(t)))
    }
  })

  it('with kernel memory full, falls back to the TS decoders (recognised by the typed out-of-memory code)', async () => {
    const dir = path.join(tmp, 'full')
    await generateLlamaModel(dir, 'tiny-llama-test', { dtype: 'BF16', seed: 6 })
    const tensors = (await loadModel(dir)).files.tensors
    const hogs: Region[] = []
    try {
      // Fill the arena to within 4 KiB of its ceiling.
      for (const size of [64 << 20, 1 << 20, 4096]) {
        for (;;) {
          try {
            hogs.push(pool.arena.alloc(size))
          } catch (e) {
            expect(e).toBeInstanceOf(WhittleError)
            expect((e as WhittleError).code).toBe('out-of-memory')
            break
          }
        }
      }
      const big = tensors.filter((t) => t.byteLength > 8192)
      expect(big.length).toBeGreaterThan(0)
      for (const t of big) {
        expect(() => pool.arena.alloc(t.byteLength * 2)).toThrow(/kernel memory/)
        expect(bits(await decodeTensorF32(pool, t)), t.name).toEqual(bits(await readTensorF32(t)))
      }
    } finally {
      for (const r of hogs) pool.arena.release(r)
    }
  })

  it.skipIf(!hasShared)('GGUF block types of the golden files: the same bits as readTensorF32', async () => {
    for (const type of ['Q8_0', 'Q4_0', 'Q4_K', 'Q5_K', 'Q6_K']) {
      const g = await readGguf(shared('reference/gguf-golden', `small-llama-${type}.gguf`))
      for (const t of g.tensors.slice(0, 4))
        expect(bits(await decodeTensorF32(pool, t)), `${type} ${t.name}`).toEqual(bits(await readTensorF32(t)))
    }
  })
})
