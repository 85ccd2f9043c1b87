// The SqueezeLLM checkpoint: a recipe's result exported through exportModel (atomic, verified), then
// read back here with a decoder written from the authors' description of their layout (QuantLinearLUT:
// 3-bit codes 10 and 21 straddling words, lookup_table per row, CSR sparse part added to the centroid
// nearest 0), not with the exporter's own unpacking. The model is a one-block Llama whose Linears all
// have a multiple of 32 inputs, as the authors' loader needs; stories260K (down_proj: 172 inputs) is
// refused, naming the tensor. No shared data needed: the tokenizer and texts are the bundled demo's.

import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { compressModel, type CompressionOutput } from '../compress/compress-model'
import { validateRecipe } from '../compress/recipe/recipe'
import { WhittleError } from '../errors'
import { openModelFiles } from '../formats/open'
import { readTensorBytes, readTensorF32 } from '../formats/read'
import { writeSafetensors } from '../formats/safetensors-writer'
import type { TensorEntry } from '../formats/types'
import { closeFile } from '../io/ranged-file'
import { loadModel, type LoadedModel } from '../model/loaded-model'
import { f16ToF32 } from '../numerics/float-encodings'
import { WorkerPool } from '../pool/worker-pool'
import { repoRoot } from '../testing/shared-data'
import { seededRandom } from '../train/seeded-random'
import { squeezeLlmFileBitsPerWeight } from '../compress/methods/squeezellm'
import { exportModel } from './export-model'

const DEMO = path.join(repoRoot, 'resources/demo/stories260K')
const CALIB = path.join(repoRoot, 'resources/text/tinystories_calib.txt')
const H = 32,
  F = 64,
  V = 512

/** A one-block Llama (hidden 32, 2 heads, MLP 64, the demo's 512-token vocabulary) with random weights. */
async function writeTinyLlama(dir: string): Promise<void> {
  const rnd = seededRandom(3)
  const gauss = (n: number, std: number): Float32Array =>
    Float32Array.from({ length: n }, () => std * Math.sqrt(-2 * Math.log(1 - rnd())) * Math.cos(2 * Math.PI * rnd()))
  const tensors: [string, number[], Float32Array][] = [
    ['model.embed_tokens.weight', [V, H], gauss(V * H, 0.5)],
    ['model.layers.0.input_layernorm.weight', [H], new Float32Array(H).fill(1)],
    ['model.layers.0.post_attention_layernorm.weight', [H], new Float32Array(H).fill(1)],
    ['model.norm.weight', [H], new Float32Array(H).fill(1)],
    ['lm_head.weight', [V, H], gauss(V * H, 0.2)],
  ]
  for (const p of ['q', 'k', 'v', 'o'])
    tensors.push([`model.layers.0.self_attn.${p}_proj.weight`, [H, H], gauss(H * H, 0.2)])
  tensors.push(['model.layers.0.mlp.gate_proj.weight', [F, H], gauss(F * H, 0.2)])
  tensors.push(['model.layers.0.mlp.up_proj.weight', [F, H], gauss(F * H, 0.2)])
  tensors.push(['model.layers.0.mlp.down_proj.weight', [H, F], gauss(H * F, 0.2)])
  // A few large weights, so the sparse part has outliers to keep.
  tensors[5][2][7] = 3
  await writeSafetensors(
    path.join(dir, 'model.safetensors'),
    tensors.map(([name, shape, data]) => ({ name, dtype: 'F32', shape, data: new Uint8Array(data.buffer) })),
    { format: 'pt' },
  )
  const config = JSON.parse(readFileSync(path.join(DEMO, 'config.json'), 'utf8')) as Record<string, unknown>
  writeFileSync(
    path.join(dir, 'config.json'),
    JSON.stringify({
      ...config,
      hidden_size: H,
      intermediate_size: F,
      num_attention_heads: 2,
      num_key_value_heads: 2,
      num_hidden_layers: 1,
      head_dim: 16,
      vocab_size: V,
      tie_word_embeddings: false,
      torch_dtype: 'float32',
    }),
  )
  for (const f of ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json'])
    copyFileSync(path.join(DEMO, f), path.join(dir, f))
}

/** The codes of one output row's qweight words as the authors pack them (3 bits: 32 codes in 3 words). */
function authorsCodes(words: (r: number) => number, inputs: number, bits: number): number[] {
  const codes: number[] = []
  if (bits === 4) {
    for (let i = 0; i < inputs; i++) codes.push((words(i >> 3) >>> (4 * (i & 7))) & 15)
    return codes
  }
  for (let b = 0; b < inputs / 32; b++) {
    const [w0, w1, w2] = [words(3 * b) >>> 0, words(3 * b + 1) >>> 0, words(3 * b + 2) >>> 0]
    for (let j = 0; j < 10; j++) codes.push((w0 >>> (3 * j)) & 7)
    codes.push((w0 >>> 30) | ((w1 & 1) << 2))
    for (let j = 0; j < 10; j++) codes.push((w1 >>> (3 * j + 1)) & 7)
    codes.push((w1 >>> 31) | ((w2 & 3) << 1))
    for (let j = 0; j < 10; j++) codes.push((w2 >>> (3 * j + 2)) & 7)
  }
  return codes
}

async function int32s(e: TensorEntry): Promise<Int32Array> {
  return new Int32Array((await readTensorBytes(e, 0, e.byteLength)).slice().buffer)
}

describe('SqueezeLLM export', () => {
  let tmp: string
  let pool: WorkerPool
  let model: LoadedModel
  const compress = (m: LoadedModel, steps: unknown[]): Promise<CompressionOutput> =>
    compressModel(pool, m, validateRecipe({ calibration: { samples: 8, seqlen: 64, seed: 0 }, steps }), {
      recipeDir: tmp,
      defaultCalibrationText: path.join(tmp, 'calib.txt'),
    })

  beforeAll(async () => {
    tmp = mkdtempSync(path.join(os.tmpdir(), 'whittle-sqllm-'))
    const dir = path.join(tmp, 'tiny')
    mkdirSync(dir)
    // The first stories of the bundled calibration text: enough for 8 windows of 64 tokens, quick to tokenize.
    writeFileSync(path.join(tmp, 'calib.txt'), readFileSync(CALIB, 'utf8').slice(0, 20_000))
    await writeTinyLlama(dir)
    pool = await WorkerPool.create({ threads: 2 })
    model = await loadModel(dir)
  })
  afterAll(async () => {
    await pool?.close()
    rmSync(tmp, { recursive: true, force: true })
  })

  // The paper's per-row tables at 3 and 4 bits, and one int8 table per tensor scaled per row (lut_rows 0),
  // which the file still holds as a table per row.
  const cases: { bits: number; layout: Record<string, unknown> }[] = [
    { bits: 3, layout: {} },
    { bits: 4, layout: {} },
    { bits: 3, layout: { lut_rows: 0, lut_dtype: 'int8' } },
  ]
  for (const { bits, layout } of cases) {
    const shared = Object.keys(layout).length > 0
    it(`writes ${bits}-bit qweight, lookup_table${shared ? ' (shared tables, expanded per row)' : ''} and the CSR sparse part as the authors' loader reads them`, async () => {
      const params = { bits, outlier_fraction: 0.01, ...layout }
      const out = await compress(model, [{ method: 'squeezellm', params }])
      const dest = path.join(tmp, `sqllm-w${bits}${shared ? '-shared' : ''}`)
      const result = await exportModel(pool, out.view, dest, {
        format: 'squeezellm',
        compression: { source: model, report: out.report, records: out.records },
      })
      expect(result.verified).toMatch(/^7 SqueezeLLM Linears decode bit-exactly/)
      // The file's bits per weight, by the count of what the authors' layout holds (per-row fp16 tables,
      // CSR), against the bytes the export measured; the report counts shared tables once.
      let fileBits = 0,
        weights = 0
      expect(JSON.parse(readFileSync(path.join(dest, 'quant_config.json'), 'utf8'))).toEqual({ wbits: bits })
      expect(existsSync(path.join(dest, 'whittle-report.json'))).toBe(true)
      const files = await openModelFiles(path.join(dest, 'model.safetensors'))
      try {
        const byName = new Map(files.tensors.map((t) => [t.name, t]))
        let sparseSeen = 0
        for (const t of out.report.tensors) {
          const module = t.name.slice(0, -'.weight'.length)
          const [rows, cols] = t.shape
          expect(byName.has(t.name)).toBe(false)
          const qweight = byName.get(`${module}.qweight`)!
          expect([qweight.dtype, qweight.shape]).toEqual(['I32', [(cols / 32) * bits, rows]])
          const lut = byName.get(`${module}.lookup_table`)!
          expect([lut.dtype, lut.shape]).toEqual(['F16', [rows, 2 ** bits]])
          const words = await int32s(qweight)
          const table = new Uint16Array((await readTensorBytes(lut, 0, lut.byteLength)).slice().buffer)
          const rowPtr = await int32s(byName.get(`${module}.rows`)!)
          const colIdx = await int32s(byName.get(`${module}.cols`)!)
          const vals = await readTensorF32(byName.get(`${module}.vals`)!)
          expect((await int32s(byName.get(`sparse_threshold.${module}`)!))[0]).toBe(colIdx.length)
          expect(rowPtr).toHaveLength(rows + 1)
          sparseSeen += colIdx.length
          fileBits += squeezeLlmFileBitsPerWeight(bits, rows, cols, colIdx.length) * rows * cols
          weights += rows * cols
          if (shared) {
            expect(t.note).toMatch(/the squeezellm export expands the tables to fp16 per row: [\d.]+ bits per weight/)
            expect(t.bitsPerWeight).toBeLessThan(squeezeLlmFileBitsPerWeight(bits, rows, cols, colIdx.length))
          } else expect(t.note).toBeUndefined()
          const want = out.view.replaced().get(t.name)!
          for (let r = 0; r < rows; r++) {
            const codes = authorsCodes((w) => words[w * rows + r], cols, bits)
            const row = codes.map((q) => f16ToF32(table[r * 2 ** bits + q]))
            for (let j = rowPtr[r]; j < rowPtr[r + 1]; j++) row[colIdx[j]] = Math.fround(row[colIdx[j]] + vals[j])
            expect(row).toEqual(Array.from(want.subarray(r * cols, (r + 1) * cols)))
          }
        }
        expect(sparseSeen).toBeGreaterThan(0)
        expect(result.verified).toContain(`(${(fileBits / weights).toFixed(3)} bits per weight in the file)`)
        // Everything else is F16.
        expect(byName.get('model.embed_tokens.weight')!.dtype).toBe('F16')
      } finally {
        closeFile(path.join(dest, 'model.safetensors'))
      }
    })
  }

  it('GOBO and SqueezeLLM results also export as dense safetensors that re-read equal to the fake-quant weights', async () => {
    for (const step of [
      { method: 'gobo', params: { bits: 3 } },
      { method: 'squeezellm', params: { bits: 3, sensitivity: 'hessian' } },
    ]) {
      const out = await compress(model, [step])
      const dest = path.join(tmp, `dense-${step.method}`)
      await exportModel(pool, out.view, dest, {
        format: 'safetensors',
        compression: { source: model, report: out.report, records: out.records },
      })
      const reopened = await loadModel(dest)
      for (const t of out.report.tensors)
        expect(Array.from(await readTensorF32(reopened.entry(t.name)))).toEqual(
          Array.from(out.view.replaced().get(t.name)!),
        )
      closeFile(path.join(dest, 'model.safetensors'))
    }
  })

  it('refuses a model whose Linears are not all SqueezeLLM-quantized, or not a multiple of 32 inputs wide', async () => {
    const rtn = await compress(model, [{ method: 'rtn', params: { bits: 4 } }])
    const dest = path.join(tmp, 'refused')
    await expect(
      exportModel(pool, rtn.view, dest, {
        format: 'squeezellm',
        compression: { source: model, report: rtn.report, records: rtn.records },
      }),
    ).rejects.toThrow(/is not SqueezeLLM-quantized/)
    const sq = await compress(model, [{ method: 'squeezellm', params: { bits: 3, sensitivity: 'hessian' } }])
    // The other packed formats say where such weights go.
    await expect(
      exportModel(pool, sq.view, dest, {
        format: 'gptq',
        compression: { source: model, report: sq.report, records: sq.records },
      }),
    ).rejects.toThrow(/export them as squeezellm/)
    const demo = await loadModel(DEMO)
    const wide = await compress(demo, [{ method: 'squeezellm', params: { bits: 3, sensitivity: 'hessian' } }])
    const err = await exportModel(pool, wide.view, dest, {
      format: 'squeezellm',
      compression: { source: demo, report: wide.report, records: wide.records },
    }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(WhittleError)
    expect((err as WhittleError).code).toBe('unsupported')
    expect((err as Error).message).toMatch(/down_proj\.weight has 172 inputs/)
    expect(existsSync(dest)).toBe(false)
  })
})
