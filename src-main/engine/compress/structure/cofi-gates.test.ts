// CoFi's gates: the hard-concrete distribution against sampling and finite differences, and the gates'
// gradient through the training engine's backward against finite differences of the real loss
// (stories260K, the bundled demo).

import { demoTextIds, loadDemoModel } from '../../eval/testing/demo-model'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { expectFiniteDifferences } from './testing/finite-differences'
import { createForward } from '../../forward'
import { readTensorF32 } from '../../formats/read'
import type { LoadedModel } from '../../model/loaded-model'
import { withReplacements } from '../../model/model-view'
import { WorkerPool } from '../../pool/worker-pool'
import { LayerDistillation } from '../../train/layer-distillation'
import { LlamaTrainer } from '../../train/llama-trainer'
import { seededRandom } from '../../train/seeded-random'
import {
  CofiGates,
  deterministicGate,
  dropZeroSubLayers,
  expectedL0,
  foldGates,
  HARD_CONCRETE,
  sampleGate,
} from './cofi-gates'
import { cofiHooks } from './cofi-hooks'
import { removeUnits } from './remove-units'
import { unitLayout } from './unit-masks'
import { selectUnits } from './unit-selection'

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
    // Independent: the paper's count, a unit kept when its gate and its sub-layer's are both non-zero;
    // flat order: per layer 2 groups then 3 neurons, then per layer the attention and MLP gates.
    const P = (i: number): number => expectedL0(gates.logAlpha[i])
    let removed = 0
    for (let l = 0; l < 2; l++) {
      for (let j = 0; j < 2; j++) removed += (1 - P(10 + 2 * l) * P(5 * l + j)) * 10
      for (let i = 0; i < 3; i++) removed += (1 - P(11 + 2 * l) * P(5 * l + 2 + i)) * 4
    }
    expect(gates.logAlpha).toHaveLength(14)
    expect(gates.subLayerIndex(1, 'mlp')).toBe(13)
    expect(value).toBeCloseTo(removed / 100, 12)
    for (const i of [0, 3, 7, 10, 11, 13]) {
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
    const last = gates.update(0.4, 0.05, 0.05)
    expect(last.expectedSparsity).toBeLessThan(0.4)
    expect(gates.lambda[0]).toBeLessThan(0) // ascended on ŝ − t < 0
    for (let s = 0; s < 600; s++) gates.update(0.4, 0.05, 0.05)
    expect(Math.abs(gates.expectedSparsity().value - 0.4)).toBeLessThan(0.02)
  })
})

describe('gate gradients through the training engine (stories260K)', () => {
  let pool: WorkerPool
  let model: LoadedModel
  let windows: Int32Array[]

  beforeAll(async () => {
    pool = await WorkerPool.create({ threads: 2 })
    model = await loadDemoModel()
    const ids = await demoTextIds(model, 'tinystories_calib')
    windows = [ids.slice(0, 64), ids.slice(64, 128)]
  })
  afterAll(() => pool?.close())

  it('gates at 1 give exactly the ungated loss', async () => {
    const trainer = await LlamaTrainer.create(pool, model, model, 64, { temperature: 2, alpha: 0.5 })
    try {
      const plain = await trainer.accumulate(windows, 1)
      const gates = new CofiGates(unitLayout(model), model.summary.parameterCount, 0.5)
      gates.setGates(new Float32Array(gates.z.length).fill(1))
      trainer.studentHooks = cofiHooks(gates)
      const gated = await trainer.accumulate(windows, 1)
      expect(gated).toEqual(plain)
      expect(plain.kl).toBeCloseTo(0, 6) // the student is the teacher
    } finally {
      trainer.free()
    }
  })

  for (const layerDistill of [false, true])
    it(`∂loss/∂z of sub-layers, heads and neurons, from the backward, match central differences of the loss${layerDistill ? ' (with layer distillation)' : ''}`, async () => {
      const layout = unitLayout(model)
      const trainer = await LlamaTrainer.create(pool, model, model, 64, { temperature: 2, alpha: 0.5 })
      try {
        const gates = new CofiGates(layout, model.summary.parameterCount, 0.5)
        trainer.studentHooks = cofiHooks(gates)
        const random = seededRandom(1)
        const layers = layerDistill ? new LayerDistillation(model.arch.hiddenSize, 0.7) : null
        // A map off the identity, so that its product reaches the student's gradient.
        layers?.W.forEach((w, i) => (layers.W[i] = w + 0.05 * (random() - 0.5)))
        trainer.layerDistillation = layers
        const base = Float32Array.from(gates.z, () => 0.3 + 0.6 * random())
        const predictions = windows.length * 63
        const loss = async (z: Float32Array): Promise<number> => {
          gates.setGates(z)
          const s = await trainer.accumulate(windows, 1 / predictions)
          return (0.5 * 4 * s.kl + 0.5 * s.ce) / predictions + (layers?.takeLoss() ?? 0)
        }
        await loss(base)
        const analytic = gates.gradZ.slice()
        // Head groups of layers 0 and 4, some neurons of layers 1 and 3, the attention gate of layer 2 and
        // the MLP gate of layer 0.
        const probes = [
          0,
          1,
          4 * (4 + 172) + 2,
          1 * (4 + 172) + 4 + 7,
          3 * (4 + 172) + 4 + 100,
          gates.subLayerIndex(2, 'attention'),
          gates.subLayerIndex(0, 'mlp'),
        ]
        await expectFiniteDifferences(loss, base, analytic, probes)
        expect(probes.some((i) => Math.abs(analytic[i]) > 1e-4)).toBe(true)
        if (layers) expect(layers.lastMatches.length).toBe(model.arch.layers)
      } finally {
        trainer.free()
      }
    }, 60_000)

  it('a sub-layer gated to 0 is removed: the smaller model computes what the gated model computes', async () => {
    const layout = unitLayout(model)
    const gates = new CofiGates(layout, model.summary.parameterCount, 0.5)
    const random = seededRandom(4)
    gates.logAlpha.forEach((_, i) => (gates.logAlpha[i] = 3 * (random() - 0.5)))
    const z = Float32Array.from(gates.z, () => 0.3 + 0.7 * random())
    z[gates.subLayerIndex(2, 'attention')] = 0
    z[gates.subLayerIndex(3, 'mlp')] = 0
    gates.setGates(z)
    expect(gates.zeroSubLayers()).toEqual({ attention: [2], mlp: [3] })
    const keep = gates.keepProbabilities()
    expect(keep.neurons[3].every((p) => p === -Infinity)).toBe(true)
    expect(keep.groups[2].every((p) => p === -Infinity)).toBe(true)
    const budget = selectUnits(layout, keep, Math.ceil(0.3 * model.summary.parameterCount), {
      uniform: false,
      split: 'predicted',
    })
    // The budget is met with dead neurons to spare; then the dead MLP keeps only the one every layer keeps.
    expect(budget.neurons[3].length).toBeGreaterThan(1)
    const selection = dropZeroSubLayers(gates, budget, false)
    expect(selection.neurons[3]).toHaveLength(1)
    expect(selection.removedParams - budget.removedParams).toBe((budget.neurons[3].length - 1) * layout.neuronParams)

    // Folded and physically smaller.
    const folded = withReplacements(model)
    for (let l = 0; l < layout.layers; l++) {
      const o = await readTensorF32(folded.entry(`model.layers.${l}.self_attn.o_proj.weight`))
      const down = await readTensorF32(folded.entry(`model.layers.${l}.mlp.down_proj.weight`))
      foldGates(gates, l, o, down)
      folded.replace(`model.layers.${l}.self_attn.o_proj.weight`, o)
      folded.replace(`model.layers.${l}.mlp.down_proj.weight`, down)
    }
    const smaller = await removeUnits(folded, layout, selection)
    const probe = [windows[0]]
    const forward = await createForward(pool, smaller.view)
    const rows = await forward.windowNll(probe).finally(() => forward.close())
    const got = rows[0].reduce((a, v) => a + v, 0) / rows[0].length

    // The gated model on the training engine, the removed units' own gates set to 0 as well.
    const reference = Float32Array.from(z)
    for (let l = 0; l < layout.layers; l++) {
      gates.groupGates(l).forEach((_, j) => {
        if (!selection.groups[l].includes(j)) reference[l * (layout.groups + layout.neurons[0]) + j] = 0
      })
      gates.neuronGates(l).forEach((_, i) => {
        if (!selection.neurons[l].includes(i))
          reference[l * (layout.groups + layout.neurons[0]) + layout.groups + i] = 0
      })
    }
    const trainer = await LlamaTrainer.create(pool, model, null, 64, { temperature: 1, alpha: 0 })
    try {
      gates.setGates(reference)
      trainer.studentHooks = cofiHooks(gates)
      const s = await trainer.accumulate(probe, 1)
      expect(Math.abs(got / (s.ce / s.predictions) - 1)).toBeLessThan(1e-5)
    } finally {
      trainer.free()
    }
  })
})
