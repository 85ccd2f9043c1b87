// The gguf step's bytes in a GGUF export (kept-tensor.ts), on the bundled demo model with IQ4_NL: they are
// what the export writes for each Linear; quantizing the step's dequantized weights again would not give
// them (the reason they are kept); and a kept entry that does not decode to the in-memory weights (a stale
// one) is not written: that tensor is quantized as usual.

import { mkdtempSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runRecipe } from '../../compress/pipeline'
import { validateRecipe } from '../../compress/recipe/recipe'
import { readGguf } from '../../formats/gguf'
import { readTensorBytes } from '../../formats/read'
import { loadModel, type LoadedModel } from '../../model/loaded-model'
import { WorkerPool } from '../../pool/worker-pool'
import { exportGguf } from './export-gguf'
import { ggufLlamaName } from './names'

const demo = path.resolve(__dirname, '../../../../resources/demo/stories260K')
const tmp = mkdtempSync(path.join(os.tmpdir(), 'whittle-gguf-kept-'))
let pool: WorkerPool
let model: LoadedModel
beforeAll(async () => {
  pool = await WorkerPool.create({ threads: 2 })
  model = await loadModel(demo)
})
afterAll(async () => {
  await pool?.close()
  rmSync(tmp, { recursive: true, force: true })
})

async function bytesOf(file: string): Promise<Map<string, Buffer>> {
  const g = await readGguf(file)
  const out = new Map<string, Buffer>()
  for (const [i, info] of g.infos.entries())
    out.set(info.name, Buffer.from(await readTensorBytes(g.tensors[i], 0, g.tensors[i].byteLength)))
  return out
}

describe('GGUF export of a gguf step’s result', () => {
  it('writes the kept bytes; quantizing the dequantized weights again would change some; stale ones are not used', async () => {
    const r = await runRecipe(pool, model, validateRecipe({ steps: [{ method: 'gguf', params: { type: 'IQ4_NL' } }] }))
    expect(r.ggufBytes.size).toBe(35)
    const ggufName = (name: string): string => ggufLlamaName(model.arch.places[name])!

    const direct = path.join(tmp, 'direct.gguf')
    await exportGguf(pool, model, direct, { type: 'IQ4_NL' })
    const kept = path.join(tmp, 'kept.gguf')
    const keptReport = await exportGguf(pool, r.view, kept, { type: 'IQ4_NL', keptBytes: r.ggufBytes })
    const again = path.join(tmp, 'again.gguf')
    const againReport = await exportGguf(pool, r.view, again, { type: 'IQ4_NL' })

    const [d, k, a] = await Promise.all([bytesOf(direct), bytesOf(kept), bytesOf(again)])
    let requantizedDiffer = 0
    for (const name of r.ggufBytes.keys()) {
      const g = ggufName(name)
      expect(k.get(g)!.equals(d.get(g)!), `${g}: kept bytes = a direct export's`).toBe(true)
      if (!a.get(g)!.equals(d.get(g)!)) requantizedDiffer++
    }
    expect(requantizedDiffer).toBeGreaterThan(0)
    expect(keptReport.tensors.filter((t) => t.kept)).toHaveLength(35)
    expect(againReport.tensors.some((t) => t.kept)).toBe(false)

    // A stale entry (here: another tensor's bytes, same shape) decodes to other values and is not written.
    const q = model.files.tensors.find(
      (t) => model.arch.places[t.name]?.role === 'q' && model.arch.places[t.name]?.layer === 0,
    )!
    const o0 = model.files.tensors.find(
      (t) => model.arch.places[t.name]?.role === 'o' && model.arch.places[t.name]?.layer === 0,
    )!
    const stale = new Map(r.ggufBytes)
    stale.set(q.name, r.ggufBytes.get(o0.name)!)
    const guarded = path.join(tmp, 'guarded.gguf')
    const guardedReport = await exportGguf(pool, r.view, guarded, { type: 'IQ4_NL', keptBytes: stale })
    const gq = guardedReport.tensors.find((t) => t.name === ggufName(q.name))!
    expect(gq.kept).toBeUndefined()
    expect((await bytesOf(guarded)).get(gq.name)!.equals(a.get(gq.name)!)).toBe(true)
    expect(guardedReport.tensors.filter((t) => t.kept)).toHaveLength(34)
  }, 120_000)
})
