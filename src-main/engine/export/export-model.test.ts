// Round trips: compress the real stories260K, export in each format, re-open the export with Whittle's
// own readers, and compare tensors and perplexity with the in-memory compressed model. Plus the CLI's
// `compress --format` as a user runs it.

import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { compressModel, type CompressionOutput } from '../compress/compress-model'
import { roundToF16 } from '../numerics/float-encodings'
import { parseRecipeText, validateRecipe } from '../compress/recipe/recipe'
import { perplexity } from '../eval/perplexity'
import { readTensorF32 } from '../formats/read'
import { loadModel, type LoadedModel } from '../model/loaded-model'
import { WorkerPool } from '../pool/worker-pool'
import { hasShared, referenceIds, shared } from '../testing/shared-data'
import { EXPORT_FORMATS, exportModel } from './export-model'

const root = path.resolve(__dirname, '../../..')
const demo = path.join(root, 'resources/demo/stories260K')
const tmp = mkdtempSync(path.join(os.tmpdir(), 'whittle-export-'))
afterAll(() => rmSync(tmp, { recursive: true, force: true }))

/** The same windows for every perplexity here: enough to see a difference, quick on 2 cores. */
const WINDOWS = 40

describe.skipIf(!hasShared)('export round trips on stories260K (reference data present)', () => {
  let pool: WorkerPool
  let model: LoadedModel
  let rtn: CompressionOutput
  let rtnPpl: number
  const evalIds = (): Int32Array => referenceIds('tinystories_eval')
  const ppl = async (m: LoadedModel): Promise<number> =>
    (await perplexity(pool, m, evalIds(), { seqlen: 256, maxWindows: WINDOWS })).ppl

  beforeAll(async () => {
    pool = await WorkerPool.create({ threads: 2 })
    model = await loadModel(shared('models/stories260K'))
    const recipe = validateRecipe({ steps: [{ method: 'rtn', params: { bits: 4, group_size: 32 } }] })
    rtn = await compressModel(pool, model, recipe, { recipeDir: root, defaultCalibrationText: null })
    rtnPpl = await ppl(rtn.view)
  })
  afterAll(async () => {
    rtn?.view.dispose()
    await pool?.close()
  })

  async function sameTensors(
    reopened: LoadedModel,
    expectOther: (name: string, want: Float32Array) => Float32Array,
  ): Promise<void> {
    for (const t of rtn.view.tensors) {
      const want = await readTensorF32(rtn.view.entry(t.name))
      const got = await readTensorF32(reopened.entry(t.name))
      const expected = rtn.records.has(t.name) ? want : expectOther(t.name, want)
      expect(Array.from(got), t.name).toEqual(Array.from(expected))
    }
  }

  it('safetensors: same tensors, same perplexity, recipe and report beside them', async () => {
    const out = path.join(tmp, 'dense')
    const r = await exportModel(pool, rtn.view, out, {
      format: 'safetensors',
      compression: { source: model, report: rtn.report, records: rtn.records },
    })
    expect(r.files.map((f) => f.name)).toEqual(
      expect.arrayContaining([
        'model.safetensors',
        'config.json',
        'tokenizer.json',
        'whittle-recipe.yaml',
        'whittle-report.html',
        'whittle-report.json',
      ]),
    )
    expect(r.verified).toMatch(/re-read and equal/)
    const reopened = await loadModel(out)
    await sameTensors(reopened, (_n, w) => w)
    expect(await ppl(reopened)).toBe(rtnPpl)
    expect(parseRecipeText(readFileSync(path.join(out, 'whittle-recipe.yaml'), 'utf8'), 'recipe')).toEqual(
      rtn.report.recipe,
    )
    const html = readFileSync(r.reportPath!, 'utf8')
    expect(html).toContain('<svg')
    expect(html).toContain('model.layers.')
    expect(JSON.parse(readFileSync(path.join(out, 'whittle-report.json'), 'utf8')).histograms).toHaveLength(4)
  })

  for (const gptqFormat of ['gptq', 'gptq_v2'] as const) {
    it(`GPTQ (${gptqFormat}): re-opens with the packed Linears bit-exact and the rest in fp16`, async () => {
      const out = path.join(tmp, gptqFormat)
      const r = await exportModel(pool, rtn.view, out, {
        format: 'gptq',
        gptqFormat,
        compression: { source: model, report: rtn.report, records: rtn.records },
      })
      expect(r.verified).toMatch(/^35 packed Linears decode bit-exactly/)
      const config = JSON.parse(readFileSync(path.join(out, 'config.json'), 'utf8'))
      expect(config.quantization_config).toMatchObject({
        quant_method: 'gptq',
        bits: 4,
        group_size: 32,
        checkpoint_format: gptqFormat,
      })
      const reopened = await loadModel(out)
      expect(reopened.tensors.map((t) => t.name).sort()).toEqual(rtn.view.tensors.map((t) => t.name).sort())
      await sameTensors(reopened, (_n, w) => w.map(roundToF16))
      // Only the fp16 rounding of embeddings and norms separates the two.
      expect(Math.abs((await ppl(reopened)) / rtnPpl - 1)).toBeLessThan(1e-3)
    })
  }

  it('compressed-tensors: re-opens bit-exact everywhere, same perplexity', async () => {
    const out = path.join(tmp, 'ct')
    await exportModel(pool, rtn.view, out, {
      format: 'compressed-tensors',
      compression: { source: model, report: rtn.report, records: rtn.records },
    })
    const reopened = await loadModel(out)
    await sameTensors(reopened, (_n, w) => w)
    expect(await ppl(reopened)).toBe(rtnPpl)
  })

  it('GGUF: a gguf-Q8_0 compression exports with every Linear decoding exactly to the measured weights', async () => {
    const recipe = validateRecipe({ steps: [{ method: 'gguf', params: { type: 'Q8_0' } }] })
    const q8 = await compressModel(pool, model, recipe, { recipeDir: root, defaultCalibrationText: null })
    const out = path.join(tmp, 'gguf-q8')
    const r = await exportModel(pool, q8.view, out, {
      format: 'gguf',
      compression: { source: model, report: q8.report, records: q8.records },
    })
    const file = r.files.find((f) => f.name.endsWith('.gguf'))!
    expect(file.name).toBe('stories260K-Q8_0.gguf')
    // 35 Linears (Q8_0, down_proj's F16 fallback as in memory) and 11 F32 norms are exact; the tied
    // embedding and its output copy were quantized to Q8_0 here.
    expect(r.verified).toBe(
      '48 tensors re-read and compared with the bytes written by CRC-32; 46 decode exactly to the in-memory weights, 2 were quantized to the export type here',
    )
    const reopened = await loadModel(path.join(out, file.name))
    const inMemory = await ppl(q8.view)
    expect(Math.abs((await ppl(reopened)) / inMemory - 1)).toBeLessThan(5e-3)
    q8.view.dispose()
  })

  it('GGUF F32 of a compressed model is lossless: the same perplexity', async () => {
    const out = path.join(tmp, 'gguf-f32')
    const r = await exportModel(pool, rtn.view, out, {
      format: 'gguf',
      ggufType: 'F32',
      compression: { source: model, report: rtn.report, records: rtn.records },
    })
    const reopened = await loadModel(path.join(out, r.files.find((f) => f.name.endsWith('.gguf'))!.name))
    expect(Math.abs((await ppl(reopened)) / rtnPpl - 1)).toBeLessThan(1e-6)
  })

  it('GGUF in, safetensors out: the lossless path re-opens with the same perplexity', async () => {
    const gguf = await loadModel(shared('models/stories260K-gguf/stories260K.gguf'))
    const out = path.join(tmp, 'from-gguf')
    const r = await exportModel(pool, gguf, out, { format: 'safetensors' })
    expect(r.verified).toMatch(/tensors converted and re-read/)
    expect(Math.abs((await ppl(await loadModel(out))) / (await ppl(gguf)) - 1)).toBeLessThan(1e-6)
  })

  it('refuses bad requests before writing anything', async () => {
    const c = { source: model, report: rtn.report, records: rtn.records }
    await expect(
      exportModel(pool, rtn.view, path.join(tmp, 'x1'), { format: 'gguf', ggufType: 'Q3_X', compression: c }),
    ).rejects.toThrow(/unknown GGUF type "Q3_X"/)
    await expect(
      exportModel(pool, rtn.view, path.join(tmp, 'x2'), { format: 'zip' as never, compression: c }),
    ).rejects.toThrow(/unknown export format "zip"/)
    await expect(
      exportModel(pool, rtn.view, path.join(tmp, 'dense'), { format: 'safetensors', compression: c }),
    ).rejects.toThrow(/already exists/)
    // A model whose Linears were not uniformly quantized has nothing to pack.
    await expect(exportModel(pool, model, path.join(tmp, 'x3'), { format: 'gptq' })).rejects.toThrow(
      /no quantized Linear to export/,
    )
    for (const name of ['x1', 'x2', 'x3']) expect(existsSync(path.join(tmp, name))).toBe(false)
  })
})

describe('whittle compress --format', () => {
  it('writes a verified GPTQ folder with the recipe and the report, and re-opens', async () => {
    const out = path.join(tmp, 'cli-gptq')
    const recipe = path.join(tmp, 'rtn.yaml')
    writeFileSync(recipe, 'steps:\n  - method: rtn\n    params: { bits: 4, group_size: 32 }\n')
    const r = spawnSync(
      process.execPath,
      [
        path.join(root, 'src-main/cli/bin.mjs'),
        'compress',
        demo,
        '--recipe',
        recipe,
        '--out',
        out,
        '--format',
        'gptq',
        '--json',
      ],
      { encoding: 'utf8', timeout: 180_000 },
    )
    expect(r.status, r.stderr).toBe(0)
    const doc = JSON.parse(r.stdout)
    expect(doc.export.verified).toMatch(/^35 packed Linears decode bit-exactly/)
    for (const f of [
      'model.safetensors',
      'config.json',
      'quantize_config.json',
      'whittle-recipe.yaml',
      'whittle-report.html',
      'whittle-report.json',
    ]) {
      expect(existsSync(path.join(out, f)), f).toBe(true)
    }
    const reopened = await loadModel(out)
    expect(reopened.summary.layers).toBe(5)
  })

  it('runs pruning and structural recipes: Wanda 50% then a dropped layer, exported smaller', async () => {
    const out = path.join(tmp, 'cli-pruned')
    const recipe = path.join(tmp, 'prune.yaml')
    writeFileSync(
      recipe,
      'calibration: {samples: 16, seqlen: 128, seed: 0}\nsteps:\n  - method: wanda\n    params: {sparsity: 0.5}\n  - method: drop_layers\n    params: {layers: [4]}\n',
    )
    const r = spawnSync(
      process.execPath,
      [path.join(root, 'src-main/cli/bin.mjs'), 'compress', demo, '--recipe', recipe, '--out', out, '--json'],
      { encoding: 'utf8', timeout: 180_000 },
    )
    expect(r.status, r.stderr).toBe(0)
    const doc = JSON.parse(r.stdout)
    expect(doc.structure).toEqual({ layers: [5, 4], heads: [8, 8], kv_heads: [4, 4] })
    expect(doc.params_after).toBeLessThan(doc.params_before)
    // Wanda zeroed half of every Linear; the four that remain keep their zeros.
    expect(doc.sparsity).toBeCloseTo(0.5, 3)
    const report = JSON.parse(readFileSync(path.join(out, 'whittle-report.json'), 'utf8'))
    expect(report.tensors.filter((t: { method: string }) => t.method === 'wanda')).toHaveLength(35)
    const reopened = await loadModel(out)
    expect(reopened.summary.layers).toBe(4)
    let zeros = 0
    const w = await readTensorF32(reopened.entry('model.layers.3.mlp.down_proj.weight'))
    for (const x of w) if (x === 0) zeros++
    expect(zeros / w.length).toBeGreaterThanOrEqual(0.5)
  })

  it('rejects an unknown --format with usage and exit code 2', () => {
    const r = spawnSync(
      process.execPath,
      [
        path.join(root, 'src-main/cli/bin.mjs'),
        'compress',
        demo,
        '--recipe',
        'x.yaml',
        '--out',
        path.join(tmp, 'never'),
        '--format',
        'zip',
      ],
      { encoding: 'utf8' },
    )
    expect(r.status).toBe(2)
    expect(r.stderr).toContain(`--format must be one of ${EXPORT_FORMATS.join(', ')}`)
  })
})
