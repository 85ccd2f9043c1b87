// The trainer's contract beyond step 0: gradients of micro-batches add up to the batch's gradient (bit for
// bit: windows are independent and every sum runs in the same order), and what it cannot train, or cannot
// train on, is refused with a typed error that names the reason.

import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { WhittleError } from '../errors'
import { loadModel, type LoadedModel } from '../model/loaded-model'
import { withReplacements } from '../model/model-view'
import { WorkerPool } from '../pool/worker-pool'
import { hasShared, referenceIds, shared } from '../testing/shared-data'
import { distill, parseDistillParams } from '../compress/methods/distill'
import { LlamaTrainer } from './llama-trainer'
import { requireTrainable } from './llama-weights'
import { referenceWindow, wandaStudent } from './testing/reference-protocol'

describe('refusals without data', () => {
  it('a family without a backward pass is refused as unsupported', () => {
    const gpt2 = {
      files: { path: 'gpt2-model' },
      arch: { family: 'gpt2', hiddenSize: 8, heads: 2, kvHeads: 2, headDim: 4, layers: 1, intermediateSize: 16 },
    }
    expect(() => requireTrainable(gpt2 as unknown as LoadedModel)).toThrow(
      expect.objectContaining({ code: 'unsupported' }),
    )
  })
})

describe.skipIf(!hasShared)('the trainer on stories260K (reference data present)', () => {
  let pool: WorkerPool
  let model: LoadedModel
  const T = 128
  const windows = (): Int32Array[] =>
    Array.from({ length: 8 }, (_, j) => referenceWindow(referenceIds('tinystories_calib'), j, T))

  beforeAll(async () => {
    pool = await WorkerPool.create({ threads: 2 })
    model = await loadModel(shared('models/stories260K'))
  })
  afterAll(() => pool?.close())

  it('two micro-batches give the same gradient bits as one batch', async () => {
    const grads = async (split: number): Promise<{ g: Float32Array[]; ce: number; kl: number }> => {
      const trainer = await LlamaTrainer.create(pool, await wandaStudent(model), model, T, {
        temperature: 2,
        alpha: 0.5,
      })
      try {
        const w = windows(),
          scale = 1 / (8 * (T - 1))
        let ce = 0,
          kl = 0
        for (let i = 0; i < 8; i += split) {
          const s = await trainer.accumulate(w.slice(i, i + split), scale)
          ce += s.ce
          kl += s.kl
        }
        return { g: trainer.params.map((p) => p.grad.view().slice()), ce, kl }
      } finally {
        trainer.free()
      }
    }
    const whole = await grads(8),
      halves = await grads(4)
    expect(halves.g.length).toBe(35)
    halves.g.forEach((g, i) => expect(g).toEqual(whole.g[i]))
    expect(halves.ce).toBeCloseTo(whole.ce, 8)
    expect(halves.kl).toBeCloseTo(whole.kl, 8)
    expect(whole.kl).toBeGreaterThan(0)
  })

  it('a student identical to its teacher has KL exactly 0', async () => {
    const trainer = await LlamaTrainer.create(pool, withReplacements(model), model, T, { temperature: 2, alpha: 0.5 })
    try {
      const s = await trainer.accumulate(windows().slice(0, 2), 1 / (2 * (T - 1)))
      expect(s.kl).toBe(0)
      expect(s.ce).toBeGreaterThan(0)
    } finally {
      trainer.free()
    }
  })

  it('refuses bad settings and bad windows with validation errors', async () => {
    await expect(LlamaTrainer.create(pool, model, null, 64, { temperature: 2, alpha: 0.5 })).rejects.toMatchObject({
      code: 'validation',
    })
    await expect(LlamaTrainer.create(pool, model, model, 1, { temperature: 2, alpha: 0.5 })).rejects.toMatchObject({
      code: 'validation',
    })
    await expect(LlamaTrainer.create(pool, model, model, 64, { temperature: 0, alpha: 0.5 })).rejects.toMatchObject({
      code: 'validation',
    })
    const trainer = await LlamaTrainer.create(pool, model, null, 16, { temperature: 1, alpha: 0 })
    try {
      await expect(trainer.accumulate([new Int32Array(15)], 1)).rejects.toMatchObject({ code: 'validation' })
      await expect(trainer.accumulate([new Int32Array(16).fill(100_000)], 1)).rejects.toBeInstanceOf(WhittleError)
    } finally {
      trainer.free()
    }
  })

  it('distill refuses a student whose Linears are stored quantized', async () => {
    const q4 = withReplacements(await loadModel(shared('reference/gguf-golden/small-llama-Q4_0.gguf')))
    await expect(
      distill.recover!({ view: q4, params: parseDistillParams({ steps: 1 }, 'distill'), pool }),
    ).rejects.toMatchObject({ code: 'unsupported' })
  })
})
