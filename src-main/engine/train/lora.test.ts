// LoRA on the training engine, checked against the full-parameter engine (itself checked against
// PyTorch in llama-trainer-step0.test.ts): with y = x·(W + s·B·A)ᵀ, the adapters' gradients are
//   ∂L/∂B = s·G·Aᵀ,   ∂L/∂A = s·Bᵀ·G,   G = ∂L/∂W at the merged weight,
// and the adapted forward's loss is the merged model's. At initialisation B = 0, so the adapted model
// is the base model bit for bit, and A follows PEFT's kaiming_uniform_(a = √5) bound 1/√in.

import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadModel, type LoadedModel } from '../model/loaded-model'
import { withReplacements } from '../model/model-view'
import { WorkerPool } from '../pool/worker-pool'
import { hasShared, referenceIds, shared } from '../testing/shared-data'
import { LlamaTrainer } from './llama-trainer'
import { kaimingUniformBound, loraScale, mergeAdapter, type LoraSettings } from './lora'
import { referenceWindow } from './testing/reference-protocol'

const T = 64
const SETTINGS: LoraSettings = { r: 4, alpha: 8, dropout: 0, seed: 7 }

/** ‖a − b‖ / ‖b‖ */
function relDiff(a: Float32Array | Float64Array, b: Float32Array | Float64Array): number {
  let num = 0,
    den = 0
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2
    den += b[i] ** 2
  }
  return Math.sqrt(num / den)
}

describe('LoRA settings and init (no data needed)', () => {
  it('merging with B = 0 leaves the weight unchanged, and merging adds s·B·A', () => {
    const W = Float32Array.from({ length: 6 }, (_, i) => i - 2.5)
    const A = Float32Array.from([1, 2, 3, -1, 0, 1]) // r 2, cols 3
    const zero = mergeAdapter(W, { name: 'w', layer: 0, role: 'q', rows: 2, cols: 3, A, B: new Float32Array(4) }, 2)
    expect(zero).toEqual(W)
    const B = Float32Array.from([1, 0, 0, 2]) // rows 2, r 2
    const m = mergeAdapter(W, { name: 'w', layer: 0, role: 'q', rows: 2, cols: 3, A, B }, 0.5)
    // row 0: W + 0.5·(1·A0); row 1: W + 0.5·(2·A1)
    expect(Array.from(m)).toEqual([-2.5 + 0.5, -1.5 + 1, -0.5 + 1.5, 0.5 - 1, 1.5 + 0, 2.5 + 1])
  })

  it("PEFT's Kaiming-uniform bound with a = √5 is 1/√fan_in", () => {
    expect(kaimingUniformBound(64)).toBeCloseTo(1 / 8, 12)
    expect(kaimingUniformBound(172)).toBeCloseTo(1 / Math.sqrt(172), 12)
    expect(loraScale({ r: 8, alpha: 16 })).toBe(2)
  })
})

describe.skipIf(!hasShared)('LoRA gradients on stories260K (reference data present)', () => {
  let pool: WorkerPool
  let model: LoadedModel
  const windows = (): Int32Array[] =>
    Array.from({ length: 4 }, (_, j) => referenceWindow(referenceIds('tinystories_calib'), j, T))
  const scale = 1 / (4 * (T - 1))

  beforeAll(async () => {
    pool = await WorkerPool.create({ threads: 2 })
    model = await loadModel(shared('models/stories260K'))
  })
  afterAll(() => pool?.close())

  it("at initialisation B is 0, A is within PEFT's bound, and the loss is the base model's bit for bit", async () => {
    const base = await LlamaTrainer.create(pool, model, null, T, { temperature: 1, alpha: 0 })
    const baseSums = await base.accumulate(windows(), scale).finally(() => base.free())
    const adapted = await LlamaTrainer.create(
      pool,
      model,
      null,
      T,
      { temperature: 1, alpha: 0 },
      { lora: SETTINGS, isTarget: () => true },
    )
    try {
      const set = adapted.adapters()!
      expect(set.adapters.length).toBe(35)
      for (const a of set.adapters) {
        expect(a.B.every((v) => v === 0)).toBe(true)
        const bound = 1 / Math.sqrt(a.cols)
        expect(a.A.every((v) => Math.abs(v) <= bound)).toBe(true)
        expect(Math.max(...a.A.map(Math.abs))).toBeGreaterThan(0.8 * bound)
      }
      const sums = await adapted.accumulate(windows(), scale)
      expect(sums.ce).toBe(baseSums.ce)
      // Kernel memory as the formula says (adapters and their scratch instead of the Linears' gradients).
      const formula = adapted.formulaBytes(4)
      expect(adapted.peakBytes / formula).toBeGreaterThan(0.97)
      expect(adapted.peakBytes / formula).toBeLessThan(1.05)
      expect(adapted.params.length).toBe(70)
      // With B = 0 only B gets a gradient.
      for (const p of adapted.params) {
        const g = p.grad.view()
        if (p.name.endsWith(':lora_A')) expect(g.every((v) => v === 0)).toBe(true)
      }
      expect(adapted.params.some((p) => p.name.endsWith(':lora_B') && p.grad.view().some((v) => v !== 0))).toBe(true)
    } finally {
      adapted.free()
    }
  })

  it("A and B gradients equal s·Bᵀ·G and s·G·Aᵀ of the full gradient at the merged weights; the loss is the merged model's", async () => {
    const targets = new Set([
      'model.layers.1.self_attn.q_proj.weight',
      'model.layers.3.mlp.down_proj.weight',
      'model.layers.4.self_attn.v_proj.weight',
    ])
    const adapted = await LlamaTrainer.create(
      pool,
      model,
      null,
      T,
      { temperature: 1, alpha: 0 },
      { lora: SETTINGS, isTarget: (n) => targets.has(n) },
    )
    try {
      // Give B non-zero values so both gradients are informative.
      for (const p of adapted.params) {
        if (!p.name.endsWith(':lora_B')) continue
        const b = p.weight.view()
        for (let i = 0; i < b.length; i++) b[i] = Math.sin(i * 0.37 + p.layer) * 0.05
      }
      const sums = await adapted.accumulate(windows(), scale)
      const set = adapted.adapters()!
      expect(set.adapters.map((a) => a.name).sort()).toEqual([...targets].sort())
      const s = loraScale(SETTINGS)
      const mergedView = withReplacements(model)
      for (const a of set.adapters) mergedView.replace(a.name, mergeAdapter(adapted.baseWeight(a.layer, a.role), a, s))
      const full = await LlamaTrainer.create(pool, mergedView, null, T, { temperature: 1, alpha: 0 })
      try {
        const fullSums = await full.accumulate(windows(), scale)
        expect(Math.abs(sums.ce - fullSums.ce) / fullSums.ce).toBeLessThan(1e-6)
        for (const a of set.adapters) {
          const G = full.params.find((p) => p.name === a.name)!.grad.view()
          const r = SETTINGS.r
          const dA = adapted.params.find((p) => p.name === `${a.name}:lora_A`)!.grad.view()
          const dB = adapted.params.find((p) => p.name === `${a.name}:lora_B`)!.grad.view()
          const wantA = new Float64Array(r * a.cols),
            wantB = new Float64Array(a.rows * r)
          for (let i = 0; i < a.rows; i++) {
            for (let j = 0; j < a.cols; j++) {
              const g = G[i * a.cols + j]
              for (let k = 0; k < r; k++) {
                wantA[k * a.cols + j] += s * a.B[i * r + k] * g
                wantB[i * r + k] += s * g * a.A[k * a.cols + j]
              }
            }
          }
          expect(relDiff(dA, wantA)).toBeLessThan(1e-4)
          expect(relDiff(dB, wantB)).toBeLessThan(1e-4)
        }
      } finally {
        full.free()
      }
    } finally {
      adapted.free()
    }
  })

  it("with dropout, the gradient matches the loss's directional derivative (forward and recompute share the mask)", async () => {
    const t = await LlamaTrainer.create(
      pool,
      model,
      null,
      T,
      { temperature: 1, alpha: 0 },
      { lora: { ...SETTINGS, dropout: 0.3 }, isTarget: () => true },
    )
    // Every call of accumulate is one pass; the masks are drawn per pass, so each evaluation restarts the count.
    const samePass = (): void => {
      ;(t as unknown as { passes: number }).passes = 0
    }
    try {
      const Bs = t.params.filter((p) => p.name.endsWith(':lora_B'))
      for (const p of Bs) {
        const b = p.weight.view()
        for (let i = 0; i < b.length; i++) b[i] = Math.cos(i * 0.11 + p.layer) * 0.05
      }
      samePass()
      await t.accumulate(windows(), scale)
      const all = t.params.map((p) => p.grad.view().slice())
      const norm = Math.sqrt(all.reduce((s, g) => s + g.reduce((a, v) => a + v * v, 0), 0))
      expect(all.filter((_, i) => t.params[i].name.endsWith(':lora_A')).some((g) => g.some((v) => v !== 0))).toBe(true)
      const start = t.params.map((p) => p.weight.view().slice())
      const lossAt = async (eps: number): Promise<number> => {
        t.params.forEach((p, i) => {
          const w = p.weight.view()
          for (let j = 0; j < w.length; j++) w[j] = start[i][j] + (eps * all[i][j]) / norm
        })
        t.zeroGrads()
        samePass()
        return (await t.accumulate(windows(), scale)).ce * scale
      }
      // The central difference's error shrinks as eps² (curvature) down to f32 noise; 1e-3 sits between.
      const eps = 1e-3
      const slope = ((await lossAt(eps)) - (await lossAt(-eps))) / (2 * eps)
      // The directional derivative along g/‖g‖ is ‖g‖.
      expect(Math.abs(slope - norm) / norm).toBeLessThan(2e-4)
    } finally {
      t.free()
    }
  })
})
