// AdamW against an independent f64 transcription of torch.optim.AdamW's update, the schedules against
// transformers' formulas at hand-picked steps, clipping against a direct norm, and the window order.

import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { allocTensor, type ArenaTensor } from '../pool/arena-tensors'
import { WorkerPool } from '../pool/worker-pool'
import { AdamW, clipGradNorm, globalGradNorm, learningRate } from './adamw'
import { WindowSchedule } from './train-loop'

let pool: WorkerPool
beforeAll(async () => {
  pool = await WorkerPool.create({ threads: 0 })
})
afterAll(() => pool?.close())

function tensor(values: ArrayLike<number>): ArenaTensor {
  const t = allocTensor(pool, values.length)
  t.view().set(values)
  return t
}

function seeded(seed: number): () => number {
  let s = seed
  return () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648) * 2 - 1
}

describe('AdamW', () => {
  it('follows torch.optim.AdamW (decoupled decay, bias correction) to f32 accuracy over 20 steps', () => {
    const r = seeded(3)
    const n = 50
    const w0 = Float64Array.from({ length: n }, () => r())
    const weight = tensor(w0),
      grad = tensor(new Float32Array(n))
    const s = { beta1: 0.9, beta2: 0.99, eps: 1e-6, weightDecay: 0.1 }
    const opt = new AdamW(pool, [{ weight, grad }], s)
    // f64 reference: p ← p(1 − lr·wd); m ← β1 m + (1 − β1) g; v ← β2 v + (1 − β2) g²;
    // p ← p − lr/(1 − β1^t) · m / (√v / √(1 − β2^t) + eps)
    const p = Float64Array.from(weight.view()),
      m = new Float64Array(n),
      v = new Float64Array(n)
    for (let t = 1; t <= 20; t++) {
      const lr = 0.01 * (1 + t / 10)
      const g = Float32Array.from({ length: n }, () => r())
      grad.view().set(g)
      opt.step(lr)
      for (let i = 0; i < n; i++) {
        p[i] *= 1 - lr * s.weightDecay
        m[i] = s.beta1 * m[i] + (1 - s.beta1) * g[i]
        v[i] = s.beta2 * v[i] + (1 - s.beta2) * g[i] * g[i]
        p[i] -= ((lr / (1 - s.beta1 ** t)) * m[i]) / (Math.sqrt(v[i]) / Math.sqrt(1 - s.beta2 ** t) + s.eps)
      }
    }
    const got = weight.view()
    for (let i = 0; i < n; i++) expect(Math.abs(got[i] - p[i])).toBeLessThan(2e-6 * Math.max(1, Math.abs(p[i])))
    expect(opt.steps).toBe(20)
    expect(opt.stateBytes).toBe(2 * 4 * n)
    opt.free()
  })

  it('keeps weights that are 0 with a masked (0) gradient exactly 0, with weight decay', () => {
    const n = 64
    const w = Float32Array.from({ length: n }, (_, i) => (i % 2 ? 0.5 : 0))
    const weight = tensor(w),
      grad = tensor(new Float32Array(n))
    const opt = new AdamW(pool, [{ weight, grad }], { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 })
    for (let t = 0; t < 30; t++) {
      grad.view().set(Float32Array.from({ length: n }, (_, i) => (i % 2 ? Math.sin(t + i) : 0)))
      opt.step(1e-2)
    }
    const got = weight.view()
    for (let i = 0; i < n; i += 2) expect(got[i]).toBe(0)
    for (let i = 1; i < n; i += 2) expect(got[i]).not.toBe(0.5)
    opt.free()
  })

  it('refuses settings outside their domain', () => {
    const weight = tensor([1]),
      grad = tensor([0])
    expect(() => new AdamW(pool, [{ weight, grad }], { beta1: 1, beta2: 0.999, eps: 1e-8, weightDecay: 0 })).toThrow(
      /beta1/,
    )
    expect(() => new AdamW(pool, [{ weight, grad }], { beta1: 0.9, beta2: 0.999, eps: 0, weightDecay: 0 })).toThrow(
      /eps/,
    )
  })
})

describe("learning-rate schedules (transformers' get_*_schedule_with_warmup)", () => {
  it('constant, linear and cosine with and without warm-up', () => {
    expect(learningRate(1e-3, 'constant', 0, 200)).toBe(1e-3)
    expect(learningRate(1e-3, 'constant', 199, 200)).toBe(1e-3)
    // warm-up from 0: step s < W gives lr·s/W
    expect(learningRate(1, 'constant', 0, 100, 10)).toBe(0)
    expect(learningRate(1, 'constant', 5, 100, 10)).toBeCloseTo(0.5, 12)
    expect(learningRate(1, 'constant', 10, 100, 10)).toBe(1)
    // linear: (total − s) / (total − W) after warm-up
    expect(learningRate(1, 'linear', 10, 100, 10)).toBe(1)
    expect(learningRate(1, 'linear', 55, 100, 10)).toBeCloseTo(0.5, 12)
    expect(learningRate(1, 'linear', 100, 100, 10)).toBe(0)
    // cosine: ½(1 + cos(π·progress))
    expect(learningRate(1, 'cosine', 0, 100)).toBe(1)
    expect(learningRate(1, 'cosine', 50, 100)).toBeCloseTo(0.5, 12)
    expect(learningRate(1, 'cosine', 25, 100)).toBeCloseTo((1 + Math.SQRT1_2) / 2, 12)
  })
})

describe('global-norm clipping', () => {
  it('scales every gradient by maxNorm / (norm + 1e-6) only when the norm is larger', () => {
    const a = { weight: tensor([0, 0]), grad: tensor([3, 0]) },
      b = { weight: tensor([0]), grad: tensor([4]) }
    expect(globalGradNorm([a, b])).toBe(5)
    expect(clipGradNorm([a, b], 10)).toBe(5)
    expect(b.grad.view()[0]).toBe(4)
    expect(clipGradNorm([a, b], 1)).toBe(5)
    expect(a.grad.view()[0]).toBeCloseTo(3 / 5, 6)
    expect(b.grad.view()[0]).toBeCloseTo(4 / 5, 6)
    expect(globalGradNorm([a, b])).toBeCloseTo(1, 5)
  })
})

describe('window order', () => {
  it('sequential wraps around; shuffled is a seeded permutation per pass', () => {
    const seq = new WindowSchedule(380, 'sequential', 0)
    expect([seq.at(0), seq.at(379), seq.at(380), seq.at(8 * 199 + 7)]).toEqual([0, 379, 0, (8 * 199 + 7) % 380])
    const a = new WindowSchedule(50, 'shuffled', 7),
      b = new WindowSchedule(50, 'shuffled', 7),
      c = new WindowSchedule(50, 'shuffled', 8)
    const passA = Array.from({ length: 50 }, (_, i) => a.at(i))
    expect([...passA].sort((x, y) => x - y)).toEqual(Array.from({ length: 50 }, (_, i) => i))
    expect(Array.from({ length: 50 }, (_, i) => b.at(i))).toEqual(passA)
    expect(Array.from({ length: 50 }, (_, i) => c.at(i))).not.toEqual(passA)
    const pass2 = Array.from({ length: 50 }, (_, i) => a.at(50 + i))
    expect(pass2).not.toEqual(passA)
    expect([...pass2].sort((x, y) => x - y)).toEqual(Array.from({ length: 50 }, (_, i) => i))
  })
})
