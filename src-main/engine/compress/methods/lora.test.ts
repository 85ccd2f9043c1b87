// The lora recipe step and QLoRA's packed base: params (the YAML names), the exact recovery of
// an NF4 base's codes and constants, the packed base's kernel memory against the f32 base's with the
// same gradients, a short run inside runRecipe after nf4 (the loss falls, the note says what merging
// did), cancellation, and (WHITTLE_SLOW=1) the relation: 200 steps of LoRA r 8 on an NF4 b64
// base bring perplexity below NF4's.

import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { WhittleError } from '../../errors'
import { perplexity } from '../../eval/perplexity'
import { tokenizeForEval } from '../../eval/tokenize-text'
import { readFileSync } from 'node:fs'
import { readTensorF32 } from '../../formats/read'
import { loadModel, type LoadedModel } from '../../model/loaded-model'
import { withReplacements, type ModelView } from '../../model/model-view'
import { WorkerPool } from '../../pool/worker-pool'
import { hasShared, referenceIds, shared } from '../../testing/shared-data'
import { scaled } from '../../testing/time-factor'
import { LlamaTrainer } from '../../train/llama-trainer'
import { HalfLinears } from '../../train/frozen-linears'
import { detectNf4BlockSize, Nf4PackedLinears, recoverNf4 } from '../../train/qlora'
import { runRecipe } from '../pipeline'
import { validateRecipe } from '../recipe/recipe'
import { NF4_CODEC, parseLoraParams, runLora } from './lora'
import { nf4Quantize } from './nf4'
import { referenceCalibrationWindows } from '../../calibration/testing/reference-windows'

const WHERE = 'recipe step 2 (lora)'

function expectValidationError(fn: () => unknown, field: string): void {
  try {
    fn()
  } catch (e) {
    expect(e).toBeInstanceOf(WhittleError)
    expect((e as WhittleError).code).toBe('validation')
    expect((e as WhittleError).message).toContain(field)
    return
  }
  throw new Error(`expected a validation error about ${field}`)
}

describe('lora params', () => {
  it("reads the issue's recipe params and PEFT-like defaults", () => {
    const p = parseLoraParams(
      { r: 8, alpha: 16, steps: 200, batch_size: 8, seqlen: 256, order: 'sequential', lr: 0.001, schedule: 'constant' },
      WHERE,
    )
    expect(p).toMatchObject({
      lora: { r: 8, alpha: 16, dropout: 0, seed: 0 },
      steps: 200,
      batchSize: 8,
      microBatch: 8,
      seqlen: 256,
      order: 'sequential',
      lr: 0.001,
      base: 'auto',
      nf4BlockSize: null,
      doubleQuant: true,
    })
    expect(parseLoraParams({}, WHERE)).toMatchObject({
      lora: { r: 8, alpha: 16 },
      order: 'shuffled',
      optimizer: { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 },
    })
  })

  it('refuses bad values with errors naming the field', () => {
    expectValidationError(() => parseLoraParams({ r: 0 }, WHERE), 'params.r')
    expectValidationError(() => parseLoraParams({ dropout: 1 }, WHERE), 'params.dropout')
    expectValidationError(() => parseLoraParams({ temperature: 2 }, WHERE), 'params.temperature')
    expectValidationError(() => parseLoraParams({ micro_batch: 9, batch_size: 8 }, WHERE), 'params.micro_batch')
    expectValidationError(() => parseLoraParams({ base: 'dense', nf4_block_size: 64 }, WHERE), 'params.nf4_block_size')
    expectValidationError(() => parseLoraParams({ optimizer: { name: 'sgd' } }, WHERE), 'params.name')
  })
})

describe('recovering an NF4 base', () => {
  const weight = (n: number): Float32Array =>
    Float32Array.from({ length: n }, (_, i) => Math.sin(i * 1.7) * (1 + (i % 13)) * 0.01)

  it("finds the exact codes and constants of nf4's output, and its block size", () => {
    for (const [blockSize, doubleQuant] of [
      [64, false],
      [32, true],
      [128, false],
    ] as const) {
      const W = weight(4096)
      const absmax = nf4Quantize(W, { blockSize, doubleQuant })
      const found = recoverNf4(NF4_CODEC, W, blockSize)!
      expect(found.absmax).toEqual(absmax)
      for (let i = 0; i < W.length; i++)
        expect(Math.fround(found.absmax[Math.floor(i / blockSize)] * NF4_CODEC.levels[found.codes[i]])).toBe(W[i])
      expect(detectNf4BlockSize(NF4_CODEC, W)).toBe(blockSize)
    }
    expect(detectNf4BlockSize(NF4_CODEC, weight(4096))).toBeNull()
  })
})

describe.skipIf(!hasShared)('lora and QLoRA on stories260K (reference data present)', () => {
  let pool: WorkerPool
  let model: LoadedModel
  let nf4Base: ModelView
  let windows: Int32Array[]

  beforeAll(async () => {
    pool = await WorkerPool.create({ threads: 2 })
    model = await loadModel(shared('models/stories260K'))
    windows = referenceCalibrationWindows()
    nf4Base = (await runRecipe(pool, model, validateRecipe({ steps: [{ method: 'nf4', params: { block_size: 64 } }] })))
      .view
  })
  afterAll(() => pool?.close())

  it('the packed NF4 base holds fewer bytes than the f32 base and gives the same gradients', async () => {
    const T = 64
    const batch = windows.slice(0, 4).map((w) => w.subarray(0, T))
    const lora = { r: 8, alpha: 16, dropout: 0, seed: 3 }
    const run = async (
      packed: Nf4PackedLinears | null,
      base: ModelView = nf4Base,
    ): Promise<{ bytes: number; grads: Float32Array[]; packedBytes: number }> => {
      const t = await LlamaTrainer.create(
        pool,
        base,
        null,
        T,
        { temperature: 1, alpha: 0 },
        { lora, isTarget: () => true, packed: packed ?? undefined },
      )
      try {
        const bytes = t.measuredBytes()
        for (const p of t.params) if (p.name.endsWith(':lora_B')) p.weight.view().fill(0.01)
        await t.accumulate(batch, 1 / (4 * (T - 1)))
        // The memory formula holds for the packed base too (one block's Linears in kernel memory).
        expect(t.peakBytes / t.formulaBytes(4)).toBeGreaterThan(0.97)
        expect(t.peakBytes / t.formulaBytes(4)).toBeLessThan(1.05)
        return { bytes, grads: t.params.map((p) => p.grad.view().slice()), packedBytes: packed?.packedBytes ?? 0 }
      } finally {
        t.free()
      }
    }
    const dense = await run(null)
    // Without double quantization the packed base dequantizes to exactly the nf4 step's weights.
    const packed = await run(new Nf4PackedLinears(pool, NF4_CODEC, 64, false))
    packed.grads.forEach((g, i) => expect(g).toEqual(dense.grads[i]))
    // Kernel memory plus the packed copy in JS memory, against the f32 base all in kernel memory.
    expect(packed.bytes + packed.packedBytes).toBeLessThan(dense.bytes)
    let linearParams = 0
    for (const t of nf4Base.tensors)
      if (t.layer !== null && /proj/.test(t.name)) linearParams += t.shape[0] * t.shape[1]
    // 4-bit codes + an f32 constant per 64 values: 4.5 bits per weight.
    expect(packed.packedBytes).toBe(linearParams * (4.5 / 8))
    const dq = new Nf4PackedLinears(pool, NF4_CODEC, 64, true)
    const withDq = await run(dq)
    expect(withDq.packedBytes).toBeLessThan(packed.packedBytes)
    expect(dq.constantChange).toBeGreaterThan(0)
    expect(dq.constantChange).toBeLessThan(0.01)
    // QLoRA loading a dense base in 4 bits quantizes it as the nf4 step would: the same gradients again.
    const quantizing = await run(new Nf4PackedLinears(pool, NF4_CODEC, 64, false, null, true), withReplacements(model))
    quantizing.grads.forEach((g, i) => expect(g).toEqual(dense.grads[i]))
  })

  it('an F16/BF16 base is held as halves: 2 bytes per Linear weight, the same gradients as in f32', async () => {
    const bf16 = await loadModel(shared('reference/gguf-golden/small-llama-hf-bf16'))
    const T = 32
    const batch = windows.slice(0, 2).map((w) => w.subarray(0, T))
    const lora = { r: 4, alpha: 8, dropout: 0, seed: 1 }
    const grads = async (packed: HalfLinears | null): Promise<Float32Array[]> => {
      const t = await LlamaTrainer.create(
        pool,
        bf16,
        null,
        T,
        { temperature: 1, alpha: 0 },
        { lora, isTarget: () => true, packed: packed ?? undefined },
      )
      try {
        for (const p of t.params) if (p.name.endsWith(':lora_B')) p.weight.view().fill(0.01)
        await t.accumulate(batch, 1 / (2 * (T - 1)))
        return t.params.map((p) => p.grad.view().slice())
      } finally {
        t.free()
      }
    }
    const half = new HalfLinears(pool, 'BF16')
    const a = await grads(half),
      b = await grads(null)
    a.forEach((g, i) => expect(g).toEqual(b[i]))
    let linearParams = 0
    for (const t of bf16.tensors) if (t.layer !== null && /proj/.test(t.name)) linearParams += t.shape[0] * t.shape[1]
    expect(half.packedBytes).toBe(2 * linearParams)
    const r = await runLora({
      view: withReplacements(bf16),
      pool,
      windows: windows.slice(0, 2),
      params: parseLoraParams({ r: 4, steps: 1, batch_size: 1, seqlen: 32 }, WHERE),
    })
    expect(r.heldAs).toBe('half')
    expect(r.packedBaseBytes).toBe(2 * linearParams)
  })

  it('after nf4, a short QLoRA run on one repeated batch lowers the loss and merges, saying so', async () => {
    const messages: string[] = []
    const batch = windows.slice(0, 8)
    const view = withReplacements(nf4Base)
    const r = await runLora({
      view,
      pool,
      windows: batch,
      onProgress: (_f, m) => messages.push(m),
      params: parseLoraParams(
        { r: 8, alpha: 16, steps: 6, batch_size: 8, seqlen: 256, order: 'sequential', lr: 3e-3 },
        WHERE,
      ),
    })
    expect(r.packedBaseBytes).toBeGreaterThan(0)
    const losses = r.training.steps.map((s) => s.loss)
    expect(losses[losses.length - 1]).toBeLessThan(losses[0])
    expect(r.training.tokens).toBe(6 * 8 * 256)
    expect(r.result.changed).toHaveLength(35)
    expect(r.result.note).toMatch(
      /QLoRA \(NF4 b64 dq base\) r 8 α 16 on 35 Linears, 6 steps: CE [0-9.]+ → [0-9.]+, 12288 tokens/,
    )
    expect(r.result.note).toContain('off its grid')
    expect(messages.some((m) => /^step 6\/6 · loss [0-9.]+ · [0-9]+ tok\/s · ETA [0-9]+ s$/.test(m))).toBe(true)
    // The merged weights are the packed base plus s·B·A: every merged tensor moved off NF4.
    for (const c of r.result.changed) {
      const after = await readTensorF32(view.entry(c.name))
      expect(after).not.toEqual(c.before)
      expect(recoverNf4(NF4_CODEC, after, 64)).toBeNull()
    }
  })

  it('eval_every measures perplexity during training, and keep_best makes the best eval the result', async () => {
    const view = withReplacements(model)
    const evalText = shared('text/tinystories_eval.txt')
    const r = await runLora({
      view,
      pool,
      windows: windows.slice(0, 8),
      params: parseLoraParams(
        {
          r: 4,
          steps: 4,
          batch_size: 2,
          seqlen: 128,
          order: 'sequential',
          lr: 3e-2,
          base: 'dense',
          eval_every: 2,
          eval_text: evalText,
          eval_windows: 4,
        },
        WHERE,
      ),
    })
    const evals = r.result.training!.evals!
    expect(evals.map((e) => e.step)).toEqual([2, 4])
    const best = evals.reduce((a, b) => (b.ppl < a.ppl ? b : a))
    expect(r.result.training!.bestStep).toBe(best.step)
    expect(r.result.note).toContain(`kept the best checkpoint, step ${best.step}`)
    // Re-measured independently on the merged result: the kept weights are the best eval's.
    const ids = await tokenizeForEval(model.files, readFileSync(evalText, 'utf8'))
    const again = await perplexity(pool, view, ids, { seqlen: 128, maxWindows: 4 })
    expect(Math.abs(again.ppl - best.ppl) / best.ppl).toBeLessThan(1e-6)
    expect(() => parseLoraParams({ keep_best: true }, WHERE)).toThrow(/keep_best/)
  })

  it('runs as a recipe step on chosen targets; base: nf4 quantizes a dense base for training (QLoRA) and says so', async () => {
    const r = await runRecipe(
      pool,
      model,
      validateRecipe({
        steps: [
          {
            method: 'lora',
            targets: { include: ['self_attn\\.(q|v)_proj'], exclude: [] },
            params: { r: 4, steps: 2, batch_size: 2, seqlen: 128, base: 'dense' },
          },
        ],
      }),
      { windows },
    )
    expect(r.tensors.map((t) => t.name).sort()).toEqual(
      [0, 1, 2, 3, 4]
        .flatMap((l) => [`model.layers.${l}.self_attn.q_proj.weight`, `model.layers.${l}.self_attn.v_proj.weight`])
        .sort(),
    )
    expect(r.tensors[0].format).toBe('lora r4 merged')
    // The report's training record: the first and last loss and the tokens seen.
    expect(r.training).toEqual([
      {
        step: 0,
        method: 'lora',
        steps: 2,
        firstLoss: expect.any(Number),
        lastLoss: expect.any(Number),
        tokens: 2 * 2 * 128,
        seconds: expect.any(Number),
        losses: expect.any(Array),
      },
    ])
    expect(r.training[0].firstLoss).toBeGreaterThan(0)
    expect(r.training[0].losses).toEqual([r.training[0].firstLoss, r.training[0].lastLoss])
    const q = await runRecipe(
      pool,
      model,
      validateRecipe({ steps: [{ method: 'lora', params: { steps: 1, batch_size: 1, seqlen: 64, base: 'nf4' } }] }),
      { windows },
    )
    expect(q.tensors[0].note).toContain('the dense base was quantized to NF4 b64 for training')
  })

  it('stops with a cancelled error when the signal fires', async () => {
    const ac = new AbortController()
    const run = runRecipe(
      pool,
      model,
      validateRecipe({ steps: [{ method: 'lora', params: { steps: 50, batch_size: 1, seqlen: 64 } }] }),
      {
        windows,
        signal: ac.signal,
        onProgress: (_f, m) => {
          if (m.includes('step 2/50')) ac.abort()
        },
      },
    )
    await expect(run).rejects.toMatchObject({ code: 'cancelled' })
  })
})

describe.skipIf(!hasShared || process.env.WHITTLE_SLOW !== '1')("QLoRA: the issue's relation (WHITTLE_SLOW=1)", () => {
  it(
    "200 steps of LoRA r 8 α 16 on all 35 Linears of an NF4 b64 base bring perplexity below NF4's",
    async () => {
      const pool = await WorkerPool.create({ threads: 2 })
      try {
        const model = await loadModel(shared('models/stories260K'))
        const windows = referenceCalibrationWindows()
        const evalIds = referenceIds('tinystories_eval')
        let nf4Ppl = 0
        const started = performance.now()
        const r = await runRecipe(
          pool,
          model,
          validateRecipe({
            steps: [
              { method: 'nf4', params: { block_size: 64 } },
              {
                method: 'lora',
                params: {
                  r: 8,
                  alpha: 16,
                  steps: 200,
                  batch_size: 8,
                  seqlen: 256,
                  order: 'sequential',
                  lr: 0.001,
                  schedule: 'constant',
                  // The protocol's windows: the whole calibration text cut into 256-token windows.
                  text: shared('text/tinystories_calib.txt'),
                },
              },
            ],
          }),
          {
            windows,
            afterStep: async (step, view) => {
              if (step === 0) nf4Ppl = (await perplexity(pool, view, evalIds, { seqlen: 256 })).ppl
            },
          },
        )
        const seconds = (performance.now() - started) / 1000
        const ppl = (await perplexity(pool, r.view, evalIds, { seqlen: 256 })).ppl
        console.log(
          `QLoRA recipe: NF4 ppl ${nf4Ppl.toFixed(4)} → ${ppl.toFixed(4)} after 200 steps in ${seconds.toFixed(0)} s`,
        )
        expect(ppl).toBeLessThan(nf4Ppl)
      } finally {
        await pool.close()
      }
    },
    scaled(3_600_000),
  )
})
