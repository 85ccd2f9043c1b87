// The imatrix viewer's engine side through the service, as the renderer calls it: readImatrix of a GGUF
// and a legacy .dat importance matrix written here for the demo model (its values chosen, so the expected
// profile is computed independently), placed on the open model's Linears; entries that fit no Linear say
// why; bad paths and non-imatrix files are refused naming the problem. With ../shared, llama-imatrix's own
// two files of one run give the same profile.

import { mkdtempSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import type { ImatrixProfile, ModelSummary } from '../contract/api'
import type { Imatrix } from '../engine/formats/imatrix-data'
import { writeImatrixFile } from '../engine/formats/imatrix-file'
import { hasShared, shared, SKIP_SHARED } from '../engine/testing/shared-data'
import { call, demoService } from './testing/service-harness'

const tmp = mkdtempSync(path.join(os.tmpdir(), 'whittle-imatrix-view-'))
afterAll(() => rmSync(tmp, { recursive: true, force: true }))

/** stories260K: 5 blocks, hidden 64, MLP 172. */
const PARTS = [
  ['attn_q', 64, 'q', 'qkv', 'self_attn.q_proj'],
  ['attn_k', 64, 'k', 'qkv', 'self_attn.k_proj'],
  ['attn_v', 64, 'v', 'qkv', 'self_attn.v_proj'],
  ['attn_output', 64, 'o', 'o', 'self_attn.o_proj'],
  ['ffn_gate', 64, 'gate', 'gate_up', 'mlp.gate_proj'],
  ['ffn_up', 64, 'up', 'gate_up', 'mlp.up_proj'],
  ['ffn_down', 172, 'down', 'down', 'mlp.down_proj'],
] as const

/** Σx² of column c in layer l, part p: distinct, exactly representable values. */
const sum = (l: number, p: number, c: number): number => 1000 * (l + 1) + 37 * p + c * c
const TOKENS = 512

function demoImatrix(): Imatrix {
  const entries: Imatrix['entries'] = new Map()
  // Written in reverse, so the profile's block order is its own doing.
  for (let l = 4; l >= 0; l--)
    for (const [p, [part, cols]] of PARTS.entries())
      entries.set(`blk.${l}.${part}.weight`, {
        columns: cols,
        sums: Float32Array.from({ length: cols }, (_, c) => sum(l, p, c)),
        counts: Float64Array.of(TOKENS),
      })
  // Another model's entries: a block this model lacks, and a width it does not have.
  entries.set('blk.7.attn_q.weight', { columns: 64, sums: new Float32Array(64).fill(1), counts: Float64Array.of(1) })
  entries.set('blk.0.ffn_down.weight', {
    columns: 100,
    sums: new Float32Array(100).fill(2),
    counts: Float64Array.of(1),
  })
  return { entries, countUnit: 'tokens', chunkCount: 4, chunkSize: 128, datasets: ['demo.txt'] }
}

describe('readImatrix through the service', () => {
  const service = demoService(tmp)

  for (const format of ['gguf', 'dat'] as const) {
    it(`${format}: every entry's Σx² / count per channel, in block order, on the demo model's Linears`, async () => {
      const demo = await call<ModelSummary>(service, 'openDemo', {})
      const file = path.join(tmp, `demo.imatrix.${format}`)
      await writeImatrixFile(file, demoImatrix(), format)
      const profile = await call<ImatrixProfile>(service, 'readImatrix', { path: file, modelId: demo.id })
      expect(profile).toMatchObject({ path: file, format, chunkCount: 4 })
      expect(profile.chunkSize).toBe(format === 'gguf' ? 128 : null)
      const byName = new Map(profile.tensors.map((t) => [t.name, t]))
      for (let l = 0; l < 5; l++) {
        for (const [p, [part, cols, role, group, hf]] of PARTS.entries()) {
          const name = `blk.${l}.${part}.weight`
          const t = byName.get(name)!
          if (l === 0 && part === 'ffn_down') {
            expect(t.tensor).toBeNull()
            expect(t.note).toBe('model.layers.0.mlp.down_proj.weight has 172 input channels, the entry 100')
            continue
          }
          expect(t, name).toMatchObject({ layer: l, role, group, tensor: `model.layers.${l}.${hf}.weight` })
          expect(t.meanSq).toHaveLength(cols)
          for (let c = 0; c < cols; c += 13) expect(t.meanSq[c] / (sum(l, p, c) / TOKENS) - 1).toBeCloseTo(0, 6)
        }
      }
      expect(byName.get('blk.7.attn_q.weight')).toMatchObject({
        tensor: null,
        note: 'the model has no q weight in layer 7',
      })
      // Block order, then q k v o gate up down inside a block.
      const order = profile.tensors.map((t) => `${t.layer}:${t.role}`)
      expect(order.slice(0, 7)).toEqual(['0:q', '0:k', '0:v', '0:o', '0:gate', '0:up', '0:down'])
      expect(order[order.length - 1]).toBe('7:q')
    })
  }

  it('without a model the entries are placed by their names alone', async () => {
    const file = path.join(tmp, 'demo.imatrix.gguf')
    const profile = await call<ImatrixProfile>(service, 'readImatrix', { path: file })
    expect(profile.tensors.every((t) => t.tensor === null && t.note === undefined)).toBe(true)
    expect(profile.tensors.find((t) => t.name === 'blk.3.ffn_up.weight')).toMatchObject({
      role: 'up',
      group: 'gate_up',
    })
  })

  it('refuses a relative path, and a file that is no importance matrix, naming it', async () => {
    await expect(call(service, 'readImatrix', { path: 'imatrix.gguf' })).rejects.toThrow(/path must be absolute/)
    await expect(call(service, 'readImatrix', { path: path.join(tmp, 'x.gguf'), extra: 1 })).rejects.toThrow(
      /unexpected field "extra"/,
    )
    const demo = await call<ModelSummary>(service, 'openDemo', {})
    const config = path.join(demo.path, 'config.json')
    await expect(call(service, 'readImatrix', { path: config })).rejects.toThrow(config)
  })
})

describe.skipIf(!hasShared)(`llama-imatrix's files (${hasShared ? 'reference data present' : SKIP_SHARED})`, () => {
  it('imatrix.gguf and imatrix.dat of one llama-imatrix run give the same profile', async () => {
    const service = demoService(tmp)
    const dir = shared('reference', 'gguf-golden', 'imatrix')
    const a = await call<ImatrixProfile>(service, 'readImatrix', { path: path.join(dir, 'imatrix.gguf') })
    const b = await call<ImatrixProfile>(service, 'readImatrix', { path: path.join(dir, 'imatrix.dat') })
    expect(a.tensors.map((t) => t.name)).toEqual(b.tensors.map((t) => t.name))
    expect(a.tensors.length).toBe(14)
    for (const [i, t] of a.tensors.entries()) {
      expect(t.group).not.toBeNull()
      for (let c = 0; c < t.meanSq.length; c++) expect(b.tensors[i].meanSq[c] / t.meanSq[c] - 1).toBeCloseTo(0, 4)
    }
  })
})
