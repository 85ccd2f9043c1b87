// GGUF export and reading of the types added beside the first five (Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, IQ4_NL,
// IQ4_XS, TQ1_0, TQ2_0), against llama-quantize's golden files:
// - export from the F32 GGUF, from the HF BF16 copy and through `whittle convert` reproduces every tensor
//   (type, dims, bytes) and general.file_type;
// - the golden files open through the normal model-opening path, and their tensors decode on the worker
//   pool (WASM kernels) to the same bits as the TS reference decoder, close to the F32 source weights;
//   their histograms count the reference-decoded values, and the forward pass over the quantized file
//   gives exactly the perplexity of an F32 model holding the reference-decoded weights.

import { existsSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { convertCommand } from '../../../cli/convert-command'
import { readGguf } from '../../formats/gguf'
import { readTensorBytes, readTensorF32 } from '../../formats/read'
import { loadModel, modelFromFiles } from '../../model/loaded-model'
import { perplexity } from '../../eval/perplexity'
import { streamTensor } from '../../inspect/tensor-stream'
import type { TensorEntry } from '../../formats/types'
import { decodeTensorF32 } from '../../pool/decode-tensor'
import { WorkerPool } from '../../pool/worker-pool'
import { exportGguf } from './export-gguf'
import { GGUF_EXPORT_TYPES, LLAMA_FILE_TYPE } from './type-policy'

const repoRoot = path.resolve(__dirname, '../../../..')
const golden = path.resolve(repoRoot, '../shared/reference/gguf-golden')
const hasShared = existsSync(path.join(golden, 'small-llama-f32.gguf'))
if (!hasShared) console.warn(`skipping GGUF export tests of the added types: ${golden} (shared test data) is absent`)

const TYPES = ['Q4_1', 'Q5_0', 'Q5_1', 'Q2_K', 'Q3_K', 'IQ4_NL', 'IQ4_XS', 'TQ1_0', 'TQ2_0'] as const

let pool: WorkerPool
let tmp: string
beforeAll(async () => {
  pool = await WorkerPool.create({ threads: 0 })
  tmp = await mkdtemp(path.join(os.tmpdir(), 'whittle-gguf-more-'))
})
afterAll(async () => {
  await pool?.close()
  await rm(tmp, { recursive: true, force: true })
})

/** Every tensor of `file` matches `reference` in type, dims and bytes; general.file_type too. */
async function expectSameTensors(file: string, reference: string): Promise<void> {
  const got = await readGguf(file)
  const want = await readGguf(reference)
  expect(got.infos.map((i) => i.name).sort()).toEqual(want.infos.map((i) => i.name).sort())
  for (const [i, w] of want.infos.entries()) {
    const j = got.infos.findIndex((g) => g.name === w.name)
    const g = got.infos[j]
    expect({ name: g.name, type: g.ggmlType, dims: g.dims }).toEqual({ name: w.name, type: w.ggmlType, dims: w.dims })
    const a = Buffer.from(await readTensorBytes(got.tensors[j], 0, got.tensors[j].byteLength))
    const b = Buffer.from(await readTensorBytes(want.tensors[i], 0, want.tensors[i].byteLength))
    expect(a.equals(b), `${w.name} bytes`).toBe(true)
  }
  expect(got.metadata['general.file_type']).toEqual(want.metadata['general.file_type'])
}

describe('the export type list', () => {
  it('offers every added type, each with llama.cpp file-type id', () => {
    for (const type of TYPES) {
      expect(GGUF_EXPORT_TYPES).toContain(type)
      expect(Number.isInteger(LLAMA_FILE_TYPE[type])).toBe(true)
    }
  })
})

describe.skipIf(!hasShared)('GGUF export of the added types: golden llama-quantize files', () => {
  for (const type of TYPES) {
    it(`GGUF F32 and HF BF16 -> ${type} reproduce small-llama-${type}.gguf byte for byte`, async () => {
      for (const source of ['small-llama-f32.gguf', 'small-llama-hf-bf16']) {
        const model = await loadModel(path.join(golden, source))
        const out = path.join(tmp, `${source}-${type}.gguf`)
        const report = await exportGguf(pool, model, out, { type })
        expect(report.tensors.every((t) => t.fallback === undefined)).toBe(true)
        expect(report.tensors.filter((t) => t.type === type)).toHaveLength(16)
        await expectSameTensors(out, path.join(golden, `small-llama-${type}.gguf`))
      }
    })
  }

  it('whittle convert --format gguf --gguf-type Q5_1 / IQ4_XS / TQ1_0 writes the golden tensors', async () => {
    for (const type of ['Q5_1', 'IQ4_XS', 'TQ1_0']) {
      const out = path.join(tmp, `convert-${type}.gguf`)
      const err = vi.spyOn(process.stderr, 'write').mockImplementation(() => true)
      const stdout = vi.spyOn(process.stdout, 'write').mockImplementation(() => true)
      let code: number
      try {
        code = await convertCommand([
          path.join(golden, 'small-llama-hf-bf16'),
          '--out',
          out,
          '--format',
          'gguf',
          '--gguf-type',
          type,
        ])
      } finally {
        err.mockRestore()
        stdout.mockRestore()
      }
      expect(code).toBe(0)
      await expectSameTensors(out, path.join(golden, `small-llama-${type}.gguf`))
    }
  })
})

describe.skipIf(!hasShared)('reading GGUF files of the added types', () => {
  for (const type of TYPES) {
    it(`small-llama-${type}.gguf opens as a model; its weights decode alike on the pool and in the TS reference`, async () => {
      const model = await loadModel(path.join(golden, `small-llama-${type}.gguf`))
      const source = await loadModel(path.join(golden, 'small-llama-f32.gguf'))
      expect(model.arch.layers).toBe(2)
      const quantized = model.files.tensors.filter((t) => t.dtype === type)
      expect(quantized).toHaveLength(16)
      for (const t of quantized) {
        const viaPool = await decodeTensorF32(pool, model.entry(t.name))
        const reference = await readTensorF32(t)
        expect(
          Buffer.from(viaPool.buffer, viaPool.byteOffset, viaPool.byteLength).equals(
            Buffer.from(reference.buffer, reference.byteOffset, reference.byteLength),
          ),
          t.name,
        ).toBe(true)
        // Close to the weights they were quantized from (N(0, 0.02²) data: an absolute bound per element).
        const original = await readTensorF32(source.files.tensors.find((s) => s.name === t.name)!)
        let worst = 0
        for (let i = 0; i < original.length; i++) worst = Math.max(worst, Math.abs(reference[i] - original[i]))
        expect(worst, t.name).toBeLessThan(0.1)
      }
      // Histogram of one tensor through the inspection stream against a count of the reference values.
      const t = quantized.find((q) => q.name === 'blk.0.ffn_up.weight')!
      const values = await readTensorF32(t)
      const bins = 16,
        lo = -0.08,
        hi = 0.08
      const counted = new Float64Array(bins + 2)
      for (const v of values) {
        if (v < lo) counted[bins]++
        else if (v > hi) counted[bins + 1]++
        else counted[Math.min(bins - 1, Math.floor(((v - lo) / (hi - lo)) * bins))]++
      }
      const streamed = await streamTensor(pool, model.entry(t.name), { histogram: { lo, hi, bins } })
      expect(Array.from(streamed.histogram!)).toEqual(Array.from(counted))
      // Forward pass: the quantized file against an F32 model whose weights are the reference decode.
      const decodedTensors: TensorEntry[] = []
      for (const q of model.files.tensors) {
        if (q.dtype !== type) {
          decodedTensors.push(q)
          continue
        }
        const v = await readTensorF32(q)
        decodedTensors.push({ ...q, dtype: 'F32', byteLength: v.byteLength, data: new Uint8Array(v.buffer) })
      }
      const asF32 = modelFromFiles({ ...model.files, tensors: decodedTensors })
      const ids = Int32Array.from({ length: 128 }, (_, i) => (i * 97 + 13) % 512)
      const a = await perplexity(pool, model, ids, { seqlen: 64 })
      const b = await perplexity(pool, asF32, ids, { seqlen: 64 })
      expect(Number.isFinite(a.ppl)).toBe(true)
      expect(a.ppl).toBe(b.ppl)
    })
  }
})
