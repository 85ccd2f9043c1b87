// A recipe's gguf step with `imatrix:`: from a file, every Linear ends as llama-quantize --imatrix's
// weights (the golden small-llama-imatrix-Q4_K.gguf, decoded); from `calibration`, the calibration windows'
// Σx² weight the quantization. Bad values are refused with typed errors.

import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { WhittleError } from '../../errors'
import { readGguf } from '../../formats/gguf'
import { readTensorF32 } from '../../formats/read'
import { loadModel, type LoadedModel } from '../../model/loaded-model'
import { WorkerPool } from '../../pool/worker-pool'
import { hasShared, shared, SKIP_SHARED } from '../../testing/shared-data'
import { compressModel } from '../compress-model'
import { validateRecipe } from '../recipe/recipe'
import { gguf } from './gguf'

describe('gguf step params', () => {
  it('imatrix is optional, a file or "calibration"; an empty one is refused', () => {
    expect(gguf.parseParams({ type: 'Q4_K' }, 'step 1')).toEqual({ type: 'Q4_K', imatrix: null })
    expect(gguf.parseParams({ type: 'Q4_K', imatrix: 'calibration' }, 'step 1').imatrix).toBe('calibration')
    expect(() => gguf.parseParams({ type: 'Q4_K', imatrix: '' }, 'step 1')).toThrow(WhittleError)
    expect(() => gguf.parseParams({ type: 'Q4_K', imatrix: 3 }, 'step 1')).toThrow(WhittleError)
    expect(gguf.stepNeedsCalibration?.({ imatrix: 'calibration' })).toBe(true)
    expect(gguf.stepNeedsCalibration?.({ imatrix: 'a.gguf' })).toBe(false)
  })
})

if (!hasShared) console.log(`[compress/methods/gguf-imatrix.test] small-llama: ${SKIP_SHARED}`)

describe.skipIf(!hasShared)('a gguf step with an importance matrix, on small-llama', () => {
  const golden = (name: string): string => shared('reference', 'gguf-golden', 'imatrix', name)
  let pool: WorkerPool
  let model: LoadedModel
  beforeAll(async () => {
    pool = await WorkerPool.create({ threads: 0 })
    model = await loadModel(golden('small-llama-tok-f32.gguf'))
  })
  afterAll(async () => {
    await pool?.close()
  })

  const blockLinears = (): string[] =>
    model.files.tensors.filter((t) => t.shape.length === 2 && t.name.startsWith('blk.')).map((t) => t.name)

  it("imatrix: FILE gives every block Linear llama-quantize --imatrix's decoded weights", async () => {
    const recipe = validateRecipe({
      steps: [{ method: 'gguf', params: { type: 'Q4_K', imatrix: golden('imatrix.dat') } }],
    })
    const out = await compressModel(pool, model, recipe, { recipeDir: '/', defaultCalibrationText: null })
    const want = await readGguf(golden('small-llama-imatrix-Q4_K.gguf'))
    try {
      for (const name of blockLinears()) {
        const got = await readTensorF32(out.view.entry(name))
        const ref = await readTensorF32(want.tensors.find((t) => t.name === name)!)
        expect(
          got.findIndex((v, i) => Object.is(v, ref[i]) === false),
          name,
        ).toBe(-1)
        expect(out.report.tensors.find((t) => t.name === name)?.note, name).toMatch(/imatrix/)
      }
    } finally {
      out.view.dispose()
    }
  })

  it('imatrix: calibration weights the quantization by the calibration inputs; a missing file names itself', async () => {
    const calibration = { text: shared('text', 'tinystories_calib.txt'), samples: 8, seqlen: 128, seed: 0 }
    const weighted = await compressModel(
      pool,
      model,
      validateRecipe({ calibration, steps: [{ method: 'gguf', params: { type: 'Q4_K', imatrix: 'calibration' } }] }),
      { recipeDir: '/', defaultCalibrationText: null },
    )
    const plain = await compressModel(
      pool,
      model,
      validateRecipe({ steps: [{ method: 'gguf', params: { type: 'Q4_K' } }] }),
      { recipeDir: '/', defaultCalibrationText: null },
    )
    try {
      for (const name of blockLinears()) {
        const a = await readTensorF32(weighted.view.entry(name))
        const b = await readTensorF32(plain.view.entry(name))
        expect(
          a.some((v, i) => v !== b[i]),
          name,
        ).toBe(true)
        expect(weighted.report.tensors.find((t) => t.name === name)?.note, name).toMatch(/imatrix \(calibration\)/)
      }
    } finally {
      weighted.view.dispose()
      plain.view.dispose()
    }
    const missing = golden('no-such-imatrix.gguf')
    await expect(
      compressModel(
        pool,
        model,
        validateRecipe({ steps: [{ method: 'gguf', params: { type: 'Q4_K', imatrix: missing } }] }),
        { recipeDir: '/', defaultCalibrationText: null },
      ),
    ).rejects.toMatchObject({ code: 'not-found', file: missing })
  })
})
