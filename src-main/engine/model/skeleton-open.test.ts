import { mkdtempSync, rmSync, statSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { loadModel } from './loaded-model'
import { PRESETS } from '../synthetic/presets'
import { writeSkeletonModel } from '../synthetic/skeleton'

const tmp = mkdtempSync(path.join(os.tmpdir(), 'whittle-skeleton-'))
afterAll(() => rmSync(tmp, { recursive: true, force: true }))

/** A Llama's parameters from its geometry (untied head), counted independently of any file. */
function llamaParameters(p: (typeof PRESETS)['tiny-llama-test']): number {
  const h = p.hiddenSize,
    kv = (h / p.heads) * p.kvHeads
  const block = h * h + 2 * h * kv + h * h + 3 * h * p.intermediateSize + 2 * h
  return 2 * p.vocabSize * h + p.layers * block + h
}

describe('skeleton models', () => {
  it('open as a sharded index with the geometry and parameter count of their preset', async () => {
    const dir = path.join(tmp, 'tiny')
    const s = await writeSkeletonModel(dir, 'tiny-llama-test', 'BF16', 40_000)
    expect(s.shards).toBeGreaterThan(2)
    const model = await loadModel(dir)
    const p = PRESETS['tiny-llama-test']
    expect(model.summary).toMatchObject({
      layers: p.layers,
      hiddenSize: p.hiddenSize,
      heads: p.heads,
      kvHeads: p.kvHeads,
      intermediateSize: p.intermediateSize,
      parameterCount: llamaParameters(p),
      tensorCount: s.tensors,
    })
    expect(2 * llamaParameters(p)).toBe(s.tensorBytes)
    // Every shard is as long as its header says, data included (a hole reads as zeros).
    const bytes = model.files.tensors.reduce((a, t) => a + t.byteLength, 0)
    expect(bytes).toBe(s.tensorBytes)
    expect(model.summary.files.length).toBeGreaterThanOrEqual(s.shards)
    for (const f of model.summary.files.filter((f) => f.endsWith('.safetensors')))
      expect(statSync(f).size).toBeGreaterThan(8)
  })

  it('refuse to write into a folder that already has the shards', async () => {
    const dir = path.join(tmp, 'twice')
    await writeSkeletonModel(dir, 'tiny-llama-test', 'BF16', 40_000)
    await expect(writeSkeletonModel(dir, 'tiny-llama-test', 'BF16', 40_000)).rejects.toMatchObject({
      code: 'io',
      file: expect.stringContaining('model-00001'),
    })
  })
})
