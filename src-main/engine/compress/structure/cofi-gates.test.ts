// CoFi's gates: the hard-concrete distribution against sampling and finite differences, and the gates'
// gradient through the training engine's backward against finite differences of the real loss
// (stories260K, the bundled demo).

import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { readTextFile, tokenizeForEval } from '../../eval/tokenize-text'
import { loadModel, type LoadedModel } from '../../model/loaded-model'
import { WorkerPool } from '../../pool/worker-pool'
import { LlamaTrainer } from '../../train/llama-trainer'
import { seededRandom } from '../../train/seeded-random'
import { CofiGates, deterministicGate, expectedL0, HARD_CONCRETE, sampleGate } from './cofi-gates'
import { cofiHooks } from './cofi-hooks'
import { unitLayout } from './unit-masks'

const root = path.resolve(__dirname, '../../../..')

describe('hard-concrete gates', () => {
  it('P(z ≠ 0) is the fraction of non-zero samples; samples stay in [0, 1] with mass at both ends', () => {
    const random = seededRandom(3)
    for (const logAlpha of [-2, 0, 1.5]) {
      let nonZero = 0,
        ones = 0,
        outside = 0
      const n = 200_000
      for (let i = 0; i < n; i++) {
        const { z } = sampleGate(logAlpha, Math.min(1 - 1e-9, Math.max(1e-9, random())))
        if (z < 0 || z > 1) outside++
        if (z > 0) nonZero++
        if (z === 1) ones++
      }
      expect(outside).toBe(0)
      expect(Math.abs(nonZero / n - expectedL0(logAlpha))).toBeLessThan(0.005)
      expect(ones).toBeGreaterThan(0)
      expect(nonZero).toBeLessThan(n)
    }
    // log α = 0: the stretched sigmoid's median is (l + r) / 2 = 0.5.
    expect(deterministicGate(0)).toBeCloseTo((HARD_CONCRETE.left + HARD_CONCRETE.right) / 2, 12)
    expect(deterministicGate(10)).toBe(1)
    expect(deterministicGate(-10)).toBe(0)
  })

  it('dz/d log α and ∂ŝ/∂ log α match central differences', () => {
    for (const [logAlpha, u] of [
      [0.3, 0.4],
      [-1, 0.8],
      [2, 0.2],
    ]) {
      const h = 1e-6
      const fd = (sampleGate(logAlpha + h, u).z - sampleGate(logAlpha - h, u).z) / (2 * h)
      expect(sampleGate(logAlpha, u).dz).toBeCloseTo(fd, 6)
    }
    const layout = {
      layers: 2,
      groups: 2,
      headsPerGroup: 1,
      headDim: 2,
      neurons: [3, 3],
      groupParams: 10,
      neuronParams: 4,
    }
    const gates = new CofiGates(layout, 100, 0.3)
    gates.logAlpha.forEach((_, i) => (gates.logAlpha[i] = Math.sin(i)))
    const { value, grad } = gates.expectedSparsity()
    // Independent: removed parameters from the probabilities directly.
    const p = gates.keepProbabilities()
    const removed =
      p.groups.flat().reduce((s, g) => s + [...g].reduce((a, x) => a + (1 - x) * 10, 0), 0) +
      p.neurons.flat().reduce((s, g) => s + [...g].reduce((a, x) => a + (1 - x) * 4, 0), 0)
    expect(value).toBeCloseTo(removed / 100, 12)
    for (const i of [0, 3, 7]) {
      const h = 1e-6
      gates.logAlpha[i] += h
      const up = gates.expectedSparsity().value
      gates.logAlpha[i] -= 2 * h
      const down = gates.expectedSparsity().value
      gates.logAlpha[i] += h
      expect(grad[i]).toBeCloseTo((up - down) / (2 * h), 7)
    }
  })

  it('the Lagrangian drives the expected sparsity to the target, λ1 rising while it is short', () => {
    const layout = {
      layers: 1,
      groups: 4,
      headsPerGroup: 1,
      headDim: 2,
      neurons: [20],
      groupParams: 10,
      neuronParams: 4,
    }
    const gates = new CofiGates(layout, 150, 0.1)
    gates.makeDeterministic()
    let last = gates.update(0.4, 0.05, 0.05)
    expect(last.expectedSparsity).toBeLessThan(0.4)
    for (let s = 0; s < 600; s++) last = gates.update(0.4, 0.05, 0.05)
    expect(gates.lambda[0]).toBeLessThan(0) // ascended on ŝ − t < 0
    expect(Math.abs(gates.expectedSparsity().value - 0.4)).toBeLessThan(0.02)
  })
})

describe('gate gradients through the training engine (stories260K)', () => {
  let pool: WorkerPool
  let model: LoadedModel
  let windows: Int32Array[]

  beforeAll(async () => {
    pool = await WorkerPool.create({ threads: 2 })
    model = await loadModel(path.join(root, 'resources/demo/stories260K'))
    const ids = await tokenizeForEval(
      model.files,
      await readTextFile(path.join(root, 'resources/text/tinystories_calib.txt')),
    )
    windows = [ids.slice(0, 64), ids.slice(64, 128)]
  })
  afterAll(() => pool?.close())

  it('∂loss/∂z of heads and neurons, from the backward, match central differences of the loss', async () => {
    const layout = unitLayout(model)
    const trainer = await LlamaTrainer.create(pool, model, model, 64, { temperature: 2, alpha: 0.5 })
    try {
      const gates = new CofiGates(layout, model.summary.parameterCount, 0.5)
      trainer.studentHooks = cofiHooks(gates)
      const random = seededRandom(1)
      const base = Float32Array.from(gates.z, () => 0.3 + 0.6 * random())
      const predictions = windows.length * 63
      const loss = async (z: Float32Array): Promise<number> => {
        gates.setGates(z)
        const s = await trainer.accumulate(windows, 1 / predictions)
        return (0.5 * 4 * s.kl + 0.5 * s.ce) / predictions
      }
      await loss(base)
      const analytic = gates.gradZ.slice()
      // Head groups of layers 0 and 4, and some neurons of layers 1 and 3.
      const probes = [0, 1, 4 * (4 + 172) + 2, 1 * (4 + 172) + 4 + 7, 3 * (4 + 172) + 4 + 100]
      const h = 1e-2
      for (const i of probes) {
        const up = Float32Array.from(base)
        up[i] += h
        const down = Float32Array.from(base)
        down[i] -= h
        const fd = ((await loss(up)) - (await loss(down))) / (2 * h)
        expect(Math.abs(analytic[i] - fd), `unit ${i}: ${analytic[i]} vs ${fd}`).toBeLessThan(
          0.02 * Math.abs(fd) + 1e-5,
        )
      }
      expect(probes.some((i) => Math.abs(analytic[i]) > 1e-4)).toBe(true)
    } finally {
      trainer.free()
    }
  }, 60_000)
})
