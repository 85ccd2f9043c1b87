import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { calibrationWindows } from '../calibration/windows'
import { runRecipe } from '../compress/pipeline'
import { validateRecipe } from '../compress/recipe/recipe'
import { isBlockLinear } from '../compress/recipe/targets'
import { WhittleError } from '../errors'
import { perplexity } from '../eval/perplexity'
import { openModelFiles } from '../formats/open'
import { readTensorBytes, readTensorF32 } from '../formats/read'
import { closeFile } from '../io/ranged-file'
import { loadModel, type LoadedModel } from '../model/loaded-model'
import type { ModelView } from '../model/model-view'
import { f8e4m3ToF32 } from '../numerics/float-encodings'
import { WorkerPool } from '../pool/worker-pool'
import { hasShared, referenceCalibrationStarts, referenceIds, shared, SKIP_SHARED } from '../testing/shared-data'
import { exportCompressedTensorsW8a8 } from './compressed-tensors-w8a8'
import { exportModel } from './export-model'

const tmp = mkdtempSync(path.join(os.tmpdir(), 'whittle-w8a8-export-'))
afterAll(() => rmSync(tmp, { recursive: true, force: true }))

interface Group {
  weights: Record<string, unknown>
  input_activations: Record<string, unknown> | null
}

function quantizationConfig(dir: string): { format: string; ignore: string[]; group: Group } {
  const q = JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8')).quantization_config
  expect(q.quant_method).toBe('compressed-tensors')
  expect(Object.keys(q.config_groups)).toEqual(['group_0'])
  return { format: q.format, ignore: q.ignore, group: q.config_groups.group_0 }
}

/**
 * Every block Linear of the re-opened checkpoint equals the compressed view's weight bit for bit (int8
 * codes have no −0, so a −0 weight reads back as +0 there).
 */
async function expectSameLinears(
  view: ModelView,
  reopened: LoadedModel,
  intCoded: ReadonlySet<string> = new Set(),
): Promise<number> {
  let n = 0
  for (const t of view.tensors.filter(isBlockLinear)) {
    const want = await readTensorF32(view.entry(t.name))
    if (intCoded.has(t.name)) want.forEach((v, i) => (want[i] = v === 0 ? 0 : v))
    const got = await readTensorF32(reopened.entry(t.name))
    expect(new Uint32Array(got.buffer)).toEqual(new Uint32Array(want.buffer))
    n++
  }
  return n
}

describe.skipIf(!hasShared)(
  `compressed-tensors W8A8 exports (${hasShared ? 'reference data present' : SKIP_SHARED})`,
  () => {
    let pool: WorkerPool
    let model: LoadedModel
    const evalIds = (): Int32Array => referenceIds('tinystories_eval')
    const ppl = async (m: LoadedModel | ModelView): Promise<number> =>
      (await perplexity(pool, m, evalIds(), { seqlen: 256, maxWindows: 8 })).ppl
    beforeAll(async () => {
      pool = await WorkerPool.create({ threads: 2 })
      model = await loadModel(shared('models/stories260K'))
    })
    afterAll(() => pool?.close())

    it('fp8: float-quantized E4M3 weights, per-channel scales, FP8_DYNAMIC activations; re-opens exactly', async () => {
      const r = await runRecipe(pool, model, validateRecipe({ steps: [{ method: 'fp8' }] }))
      const dest = path.join(tmp, 'fp8')
      await exportCompressedTensorsW8a8(r.view, r.records, dest)
      const { format, ignore, group } = quantizationConfig(dest)
      expect(format).toBe('float-quantized')
      expect(ignore).toEqual(['lm_head'])
      expect(group.weights).toMatchObject({
        num_bits: 8,
        type: 'float',
        strategy: 'channel',
        symmetric: true,
        dynamic: false,
      })
      expect(group.input_activations).toMatchObject({ num_bits: 8, type: 'float', strategy: 'token', dynamic: true })

      // The raw file: E4M3 bytes and [rows, 1] scales, decoded here with the plain E4M3 decoder.
      const file = path.join(dest, 'model.safetensors')
      const raw = await openModelFiles(file)
      try {
        const w = raw.tensors.find((t) => t.name === 'model.layers.0.self_attn.q_proj.weight')!
        const s = raw.tensors.find((t) => t.name === 'model.layers.0.self_attn.q_proj.weight_scale')!
        expect(w.dtype).toBe('F8_E4M3')
        expect(s.shape).toEqual([w.shape[0], 1])
        const bytes = await readTensorBytes(w, 0, w.byteLength)
        const scales = await readTensorF32(s)
        const want = await readTensorF32(r.view.entry('model.layers.0.self_attn.q_proj.weight'))
        const cols = w.shape[1]
        for (let i = 0; i < want.length; i++)
          expect(Math.fround(f8e4m3ToF32(bytes[i]) * scales[Math.floor(i / cols)])).toBe(want[i])
      } finally {
        closeFile(file)
      }

      const reopened = await loadModel(dest)
      expect(reopened.runtime).toEqual({ activations: 'fp8-per-token' })
      expect(await expectSameLinears(r.view, reopened)).toBe(35)
      expect(await ppl(reopened)).toBe(await ppl(r.view))
    })

    it('smoothquant: int-quantized I8 codes with dynamic per-token int8 activations; re-opens exactly', async () => {
      const windows = calibrationWindows(referenceIds('tinystories_calib'), {
        samples: 16,
        seqlen: 256,
        seed: 0,
        starts: referenceCalibrationStarts().slice(0, 16),
      })
      const r = await runRecipe(pool, model, validateRecipe({ steps: [{ method: 'smoothquant' }] }), { windows })
      const dest = path.join(tmp, 'smoothquant')
      await exportCompressedTensorsW8a8(r.view, r.records, dest)
      const { format, group } = quantizationConfig(dest)
      expect(format).toBe('int-quantized')
      expect(group.weights).toMatchObject({ num_bits: 8, type: 'int', strategy: 'channel', symmetric: true })
      expect(group.input_activations).toMatchObject({ num_bits: 8, type: 'int', strategy: 'token', dynamic: true })
      const raw = await openModelFiles(path.join(dest, 'model.safetensors'))
      const w = raw.tensors.find((t) => t.name === 'model.layers.1.mlp.down_proj.weight')!
      expect(w.dtype).toBe('I8')
      expect(raw.tensors.some((t) => t.name.endsWith('weight_zero_point'))).toBe(false)
      closeFile(path.join(dest, 'model.safetensors'))

      const reopened = await loadModel(dest)
      expect(reopened.runtime).toEqual({ activations: 'int8-per-token' })
      expect(await expectSameLinears(r.view, reopened, new Set(r.records.keys()))).toBe(35)
      // The smoothed norms travel as ordinary tensors.
      const norm = 'model.layers.0.input_layernorm.weight'
      expect(await readTensorF32(reopened.entry(norm))).toEqual(await readTensorF32(r.view.entry(norm)))
      expect(await ppl(reopened)).toBe(await ppl(r.view))
    })

    it('rtn w8 asymmetric per channel: weight-only int-quantized with I8 zero points', async () => {
      const r = await runRecipe(
        pool,
        model,
        validateRecipe({ steps: [{ method: 'rtn', params: { bits: 8, sym: false, group_size: -1 } }] }),
      )
      const dest = path.join(tmp, 'rtn8')
      await exportCompressedTensorsW8a8(r.view, r.records, dest)
      const { format, group } = quantizationConfig(dest)
      expect(format).toBe('int-quantized')
      expect(group.weights).toMatchObject({ type: 'int', symmetric: false })
      expect(group.input_activations).toBeNull()
      const reopened = await loadModel(dest)
      expect(reopened.runtime).toBeUndefined()
      expect(await expectSameLinears(r.view, reopened, new Set(r.records.keys()))).toBe(35)
    })

    it('llm_int8: Linears that kept no fp16 column are int8 per row; the others stay dense and ignored', async () => {
      const windows = calibrationWindows(referenceIds('tinystories_calib'), {
        samples: 8,
        seqlen: 256,
        seed: 0,
        starts: referenceCalibrationStarts().slice(0, 8),
      })
      // A threshold between the layers' activation ranges: some Linears keep fp16 columns, some none.
      const r = await runRecipe(
        pool,
        model,
        validateRecipe({ steps: [{ method: 'llm_int8', params: { threshold: 2 } }] }),
        {
          windows,
        },
      )
      const plain = r.tensors.filter((t) => t.note?.startsWith('0/')).map((t) => t.name)
      expect(r.records.size).toBe(plain.length)
      expect(plain.length).toBeGreaterThan(0)
      expect(plain.length).toBeLessThan(35)
      const dest = path.join(tmp, 'llm-int8')
      await exportCompressedTensorsW8a8(r.view, r.records, dest)
      const { format, ignore, group } = quantizationConfig(dest)
      expect(format).toBe('int-quantized')
      expect(group.input_activations).toBeNull()
      expect(ignore).toHaveLength(1 + 35 - plain.length)
      const reopened = await loadModel(dest)
      // Kept-fp16 Linears are stored as they are held (dense), the others as I8 codes: all equal the view.
      expect(await expectSameLinears(r.view, reopened, new Set(r.records.keys()))).toBe(35)
    })

    it('refuses grids it cannot hold before writing anything, with a typed error naming the tensor', async () => {
      const r = await runRecipe(
        pool,
        model,
        validateRecipe({ steps: [{ method: 'rtn', params: { bits: 4, group_size: 32 } }] }),
      )
      const dest = path.join(tmp, 'rtn4')
      const err = await exportModel(pool, r.view, dest, {
        format: 'compressed-tensors-w8a8',
        compression: { source: model, report: null as never, records: r.records },
      }).catch((e: unknown) => e)
      expect(err).toBeInstanceOf(WhittleError)
      expect((err as WhittleError).code).toBe('unsupported')
      expect((err as WhittleError).message).toMatch(/model\.layers\.\d+\.\S+\.weight is quantized to 4 bits in groups/)
      expect(existsSync(dest)).toBe(false)
    })

    it('refuses a weight a later step moved off its grid', async () => {
      const r = await runRecipe(pool, model, validateRecipe({ steps: [{ method: 'fp8' }] }))
      const name = 'model.layers.2.mlp.up_proj.weight'
      const w = await readTensorF32(r.view.entry(name))
      w[5] = Math.fround(w[5] * 1.01 + 1e-4)
      r.view.replace(name, w)
      const dest = path.join(tmp, 'moved')
      await expect(exportCompressedTensorsW8a8(r.view, r.records, dest)).rejects.toThrow(
        /up_proj\.weight: weight \[0, 5\] .* not an E4M3 value/,
      )
      expect(existsSync(dest)).toBe(false)
    })
  },
)
