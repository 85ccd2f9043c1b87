// A ternary result (bitnet PTQ, or distill with qat: ternary) exports as GGUF TQ2_0 / TQ1_0 exactly: their
// per-block scale is the block's absmax, which for ternary weights is the tensor's fp16 γ, so every block
// Linear read back from the file (Whittle's GGUF reader, llama.cpp's q/k row order undone here) equals the
// weights the perplexity was measured on, bit for bit. The dense copy for the rest of the ecosystem is exact
// in F16 too (q · γ with γ an fp16 value). On the golden small Llama (rows of 256 and 768: whole blocks);
// stories260K's 64- and 172-wide rows are no whole TQ block, and there llama.cpp's fallbacks apply.

import { mkdtempSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { hfToGgufRows } from '../../arch/rope-permute'
import { runRecipe } from '../../compress/pipeline'
import { validateRecipe } from '../../compress/recipe/recipe'
import { readTensorF32 } from '../../formats/read'
import { loadModel, type LoadedModel } from '../../model/loaded-model'
import type { ModelView } from '../../model/model-view'
import { WorkerPool } from '../../pool/worker-pool'
import { hasShared, shared, SKIP_SHARED } from '../../testing/shared-data'
import { exportModel } from '../export-model'
import { exportGguf } from './export-gguf'

const tmp = mkdtempSync(path.join(os.tmpdir(), 'whittle-ternary-export-'))
afterAll(() => rmSync(tmp, { recursive: true, force: true }))

const LINEARS = ['q', 'k', 'v', 'o', 'gate', 'up', 'down']

/** Each block Linear of `model` by "layer:role". */
function linearsByPlace(model: LoadedModel): Map<string, string> {
  const out = new Map<string, string>()
  for (const [name, place] of Object.entries(model.arch.places))
    if (place.layer !== null && LINEARS.includes(place.role)) out.set(`${place.layer}:${place.role}`, name)
  return out
}

/** Every block Linear of `file` (re-opened) equals the view's weights bit for bit; returns how many. */
async function expectSameLinears(view: ModelView, file: string, ggufRows: boolean): Promise<number> {
  const reopened = await loadModel(file)
  const want = linearsByPlace(view)
  const got = linearsByPlace(reopened)
  expect([...got.keys()].sort()).toEqual([...want.keys()].sort())
  for (const [place, name] of want) {
    const entry = view.entry(name)
    const [rows, cols] = entry.shape
    let w = await readTensorF32(entry)
    const role = place.split(':')[1]
    const heads = role === 'q' ? view.arch.heads : role === 'k' ? view.arch.kvHeads : 0
    if (ggufRows && heads > 0) w = hfToGgufRows(w, rows, cols, heads)
    const back = await readTensorF32(reopened.entry(got.get(place)!))
    expect(Buffer.from(back.buffer, back.byteOffset, back.byteLength).equals(Buffer.from(w.buffer)), name).toBe(true)
  }
  return want.size
}

/** The distinct values of a tensor (a ternary one has at most three: −γ, 0, γ). */
async function levels(view: ModelView, name: string): Promise<number[]> {
  return [...new Set(await readTensorF32(view.entry(name)))].sort((a, b) => a - b)
}

describe.skipIf(!hasShared)(
  `ternary results export as GGUF TQ types and dense F16 exactly (${hasShared ? 'reference data present' : SKIP_SHARED})`,
  () => {
    let pool: WorkerPool
    let model: LoadedModel
    beforeAll(async () => {
      pool = await WorkerPool.create({ threads: 2 })
      model = await loadModel(shared('reference/gguf-golden/small-llama-hf-bf16'))
    })
    afterAll(() => pool?.close())

    for (const type of ['TQ2_0', 'TQ1_0'] as const) {
      it(`bitnet PTQ → GGUF ${type}: every block Linear reads back as the ternary weights`, async () => {
        const r = await runRecipe(pool, model, validateRecipe({ steps: [{ method: 'bitnet' }] }))
        const out = path.join(tmp, `ptq-${type}.gguf`)
        const report = await exportGguf(pool, r.view, out, { type })
        const linears = report.tensors.filter((t) =>
          /^blk\.\d+\.(attn_[qkv]|attn_output|ffn_gate|ffn_up|ffn_down)\.weight$/.test(t.name),
        )
        expect(linears).toHaveLength(2 * 7)
        for (const t of linears)
          expect({ name: t.name, type: t.type, exact: t.exact }).toEqual({ name: t.name, type, exact: true })
        expect(await expectSameLinears(r.view, out, true)).toBe(14)
      })
    }

    it('ternary QAT by distillation → TQ2_0 and a dense F16 safetensors copy, both exact', async () => {
      // Random token windows: the golden model has no tokenizer, and exactness does not depend on the text.
      let s = 7
      const windows = Array.from({ length: 4 }, () =>
        Int32Array.from({ length: 64 }, () => (s = (s * 1103515245 + 12345) % 2 ** 31) % 512),
      )
      const recipe = validateRecipe({
        steps: [{ method: 'distill', params: { qat: 'ternary', steps: 2, batch_size: 2, seqlen: 64, lr: 0.001 } }],
      })
      const r = await runRecipe(pool, model, recipe, { windows })
      expect(r.view.runtime).toEqual({ activations: 'int8-per-token-inputs' })
      for (const name of linearsByPlace(r.view).values()) {
        const v = await levels(r.view, name)
        expect(v.length, name).toBeLessThanOrEqual(3)
        expect(v[0], name).toBe(-v[v.length - 1])
      }
      const gguf = path.join(tmp, 'qat-TQ2_0.gguf')
      const report = await exportGguf(pool, r.view, gguf, { type: 'TQ2_0' })
      expect(report.tensors.filter((t) => t.type === 'TQ2_0' && t.exact)).toHaveLength(14)
      expect(await expectSameLinears(r.view, gguf, true)).toBe(14)
      const dense = path.join(tmp, 'qat-f16')
      await exportModel(pool, r.view, dense, { format: 'safetensors', dtype: 'F16' })
      expect(await expectSameLinears(r.view, dense, false)).toBe(14)
    })
  },
)
