// CoFi's hidden-dimension gates (z_hidden): the expected sparsity with them against the paper's count and
// finite differences, and their gradient through the training engine's forward and backward against
// finite differences of the real loss (stories260K, the bundled demo).

import { demoTextIds, loadDemoModel } from '../../eval/testing/demo-model'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { expectFiniteDifferences } from './testing/finite-differences'
import { createForward } from '../../forward'
import { readTensorF32 } from '../../formats/read'
import type { LoadedModel } from '../../model/loaded-model'
import { withReplacements } from '../../model/model-view'
import { WorkerPool } from '../../pool/worker-pool'
import { LlamaTrainer } from '../../train/llama-trainer'
import { seededRandom } from '../../train/seeded-random'
import { CofiGates, expectedL0, foldGates } from './cofi-gates'
import { cofiEmbeddingHooks, cofiHooks } from './cofi-hooks'
import { hiddenRemovedParams, layoutAtHidden, selectCofi } from './cofi-selection'
import { foldHiddenGates, removeHidden } from './remove-hidden'
import { removeUnits } from './remove-units'
import { unitLayout } from './unit-masks'
import { selectUnits } from './unit-selection'

describe('expected sparsity with hidden gates', () => {
  it("is the paper's count (every matrix's hidden side scales with the kept dimensions), and its gradient matches central differences", () => {
    const layout = {
      layers: 2,
      groups: 2,
      headsPerGroup: 1,
      headDim: 2,
      neurons: [3, 3],
      groupParams: 10,
      neuronParams: 4,
    }
    // 2·2·10 + 6·4 = 64 in units, 36 outside them (embedding, norms).
    const gates = new CofiGates(layout, 100, 0.3, 4)
    gates.logAlpha.forEach((_, i) => (gates.logAlpha[i] = Math.sin(i)))
    const { value, grad } = gates.expectedSparsity()
    const P = (i: number): number => expectedL0(gates.logAlpha[i])
    // Flat order: per layer 2 groups then 3 neurons, per layer the attention and MLP gates, then 4 hidden.
    expect(gates.logAlpha).toHaveLength(18)
    expect(gates.hiddenIndex(0)).toBe(14)
    const h = (P(14) + P(15) + P(16) + P(17)) / 4
    let kept = 36 * h
    for (let l = 0; l < 2; l++) {
      for (let j = 0; j < 2; j++) kept += P(10 + 2 * l) * P(5 * l + j) * h * 10
      for (let i = 0; i < 3; i++) kept += P(11 + 2 * l) * P(5 * l + 2 + i) * h * 4
    }
    expect(value).toBeCloseTo(1 - kept / 100, 12)
    for (const i of [0, 3, 7, 10, 13, 14, 17]) {
      const d = 1e-6
      gates.logAlpha[i] += d
      const up = gates.expectedSparsity().value
      gates.logAlpha[i] -= 2 * d
      const down = gates.expectedSparsity().value
      gates.logAlpha[i] += d
      expect(grad[i]).toBeCloseTo((up - down) / (2 * d), 7)
    }
    // Without hidden gates the count is the one of units only.
    const plain = new CofiGates(layout, 100, 0.3)
    plain.logAlpha.set(gates.logAlpha.subarray(0, 14))
    let unitsKept = 0
    for (let l = 0; l < 2; l++) {
      for (let j = 0; j < 2; j++) unitsKept += P(10 + 2 * l) * P(5 * l + j) * 10
      for (let i = 0; i < 3; i++) unitsKept += P(11 + 2 * l) * P(5 * l + 2 + i) * 4
    }
    expect(plain.expectedSparsity().value).toBeCloseTo((64 - unitsKept) / 100, 12)
  })
})

describe('what goes with hidden gates', () => {
  // H = 4: a group holds (2·1 + 2)·2 = 8 values per hidden dimension, a neuron 3; 60 parameters outside
  // the units (15 per dimension). One hidden dimension fewer saves 2·2·8 + 6·3 + 15 = 65.
  const layout = {
    layers: 2,
    groups: 2,
    headsPerGroup: 1,
    headDim: 2,
    neurons: [3, 3],
    groupParams: 32,
    neuronParams: 12,
  }
  const gatesWith = (zeroHidden: number[]): CofiGates => {
    const gates = new CofiGates(layout, 260, 0.5, 4)
    gates.logAlpha.forEach((_, i) => (gates.logAlpha[i] = Math.cos(i)))
    for (const k of zeroHidden) gates.logAlpha[gates.hiddenIndex(k)] = -5 - k
    gates.makeDeterministic()
    return gates
  }

  it('the hidden dimensions gated to 0 go, never beyond the budget; units make up the rest at the smaller size', () => {
    const all = gatesWith([0, 1, 2, 3])
    expect(hiddenRemovedParams(all, 3)).toBe(65)
    // 100 parameters: one dimension (65) fits, two (130) do not; the least likely to survive goes (3).
    const a = selectCofi(all, 100, { uniform: true, keep: all.keepProbabilities() })
    expect(a.hidden).toEqual([0, 1, 2])
    expect(a.units).toEqual(
      selectUnits(layoutAtHidden(layout, 4, 3), all.keepProbabilities(), 35, { uniform: true, split: 'predicted' }),
    )
    expect(a.removedParams).toBe(65 + a.units.removedParams)
    expect(a.removedParams).toBeGreaterThanOrEqual(100)
    // Two dimensions gated to 0 and room for both: both go, and they meet the budget alone.
    const two = gatesWith([1, 2])
    const b = selectCofi(two, 130, { uniform: true, keep: two.keepProbabilities() })
    expect(b.hidden).toEqual([0, 3])
    expect(b.units.groups).toEqual([
      [0, 1],
      [0, 1],
    ])
    expect(b.units.neurons).toEqual([
      [0, 1, 2],
      [0, 1, 2],
    ])
    expect(b.removedParams).toBe(130)
    // None gated to 0: the units alone, as without hidden gates.
    const none = gatesWith([])
    const c = selectCofi(none, 50, { uniform: true, keep: none.keepProbabilities() })
    expect(c.hidden).toEqual([0, 1, 2, 3])
    expect(c.units).toEqual(selectUnits(layout, none.keepProbabilities(), 50, { uniform: true, split: 'predicted' }))
  })
})

describe('hidden gates through the training engine (stories260K)', () => {
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

  const withGates = (trainer: LlamaTrainer, gates: CofiGates): void => {
    trainer.studentHooks = cofiHooks(gates)
    trainer.embeddingHooks = cofiEmbeddingHooks(gates)
  }

  it('hidden gates at 1 give exactly the ungated loss; one shared value leaves it (RMSNorm), different values change it', async () => {
    const trainer = await LlamaTrainer.create(pool, model, model, 64, { temperature: 2, alpha: 0.5 })
    try {
      const plain = await trainer.accumulate(windows, 1)
      const gates = new CofiGates(unitLayout(model), model.summary.parameterCount, 0.5, model.arch.hiddenSize)
      gates.setGates(new Float32Array(gates.z.length).fill(1))
      withGates(trainer, gates)
      expect(await trainer.accumulate(windows, 1)).toEqual(plain)
      // The same gate on every dimension scales the whole residual stream, which every RMSNorm undoes (up
      // to eps): the student stays the teacher. Different gates per dimension change the model.
      const half = new Float32Array(gates.z.length).fill(1)
      half.fill(0.5, gates.hiddenIndex(0))
      gates.setGates(half)
      expect((await trainer.accumulate(windows, 1)).kl).toBeLessThan(1e-3 * plain.predictions)
      const random = seededRandom(2)
      gates.setGates(half.map((v, i) => (i >= gates.hiddenIndex(0) ? 0.2 + 0.8 * random() : v)))
      expect((await trainer.accumulate(windows, 1)).kl).toBeGreaterThan(1e-2 * plain.predictions)
    } finally {
      trainer.free()
    }
  })

  it('∂loss/∂z_hidden (and of heads, neurons, sub-layers beside it) from the backward match central differences', async () => {
    const layout = unitLayout(model)
    const trainer = await LlamaTrainer.create(pool, model, model, 64, { temperature: 2, alpha: 0.5 })
    try {
      const H = model.arch.hiddenSize
      const gates = new CofiGates(layout, model.summary.parameterCount, 0.5, H)
      withGates(trainer, gates)
      const random = seededRandom(5)
      const base = Float32Array.from(gates.z, () => 0.3 + 0.6 * random())
      const predictions = windows.length * 63
      const loss = async (z: Float32Array): Promise<number> => {
        gates.setGates(z)
        const s = await trainer.accumulate(windows, 1 / predictions)
        return (0.5 * 4 * s.kl + 0.5 * s.ce) / predictions
      }
      await loss(base)
      const analytic = gates.gradZ.slice()
      const probes = [
        gates.hiddenIndex(0),
        gates.hiddenIndex(17),
        gates.hiddenIndex(40),
        gates.hiddenIndex(H - 1),
        2,
        2 * (4 + 172) + 4 + 50,
        gates.subLayerIndex(1, 'attention'),
        gates.subLayerIndex(4, 'mlp'),
      ]
      await expectFiniteDifferences(loss, base, analytic, probes)
      expect(probes.slice(0, 4).every((i) => Math.abs(analytic[i]) > 1e-4)).toBe(true)
    } finally {
      trainer.free()
    }
  }, 60_000)

  it('hidden dimensions gated to 0 are removed: the smaller model computes what the gated model computes (exports: export/cofi-hidden-export.test.ts)', async () => {
    const layout = unitLayout(model)
    const H = model.arch.hiddenSize
    const total = model.summary.parameterCount
    const gates = new CofiGates(layout, total, 0.5, H)
    const random = seededRandom(6)
    gates.logAlpha.forEach((_, i) => (gates.logAlpha[i] = 3 * (random() - 0.5)))
    const z = Float32Array.from(gates.z, () => 0.3 + 0.7 * random())
    const dropped = [1, 5, 9, 20, 21, 33, 40, 47, 50, 58, 61, 63]
    for (const k of dropped) {
      z[gates.hiddenIndex(k)] = 0
      gates.logAlpha[gates.hiddenIndex(k)] = -10 // least likely to survive, as a 0 deterministic gate is
    }
    gates.setGates(z)
    const target = Math.ceil(0.3 * total)
    const chosen = selectCofi(gates, target, { uniform: true, keep: gates.keepProbabilities() })
    expect(chosen.hidden).toEqual(Array.from({ length: H }, (_, k) => k).filter((k) => !dropped.includes(k)))
    expect(chosen.removedParams).toBeGreaterThanOrEqual(target)

    // Folded, then physically smaller.
    const folded = withReplacements(model)
    for (let l = 0; l < layout.layers; l++) {
      const oName = `model.layers.${l}.self_attn.o_proj.weight`,
        downName = `model.layers.${l}.mlp.down_proj.weight`
      const o = await readTensorF32(folded.entry(oName))
      const down = await readTensorF32(folded.entry(downName))
      foldGates(gates, l, o, down)
      folded.replace(oName, o)
      folded.replace(downName, down)
    }
    await foldHiddenGates(folded, gates.hiddenGates())
    const withoutUnits = await removeUnits(folded, layout, chosen.units)
    const smaller = await removeHidden(withoutUnits.view, chosen.hidden)
    const Hk = chosen.hidden.length
    expect(smaller.arch.hiddenSize).toBe(Hk)
    expect(smaller.arch.headDim).toBe(model.arch.headDim)
    expect(smaller.arch.normEps).toBeCloseTo(((model.arch.normEps ?? 1e-5) * H) / Hk, 15)
    // The parameter count the selection predicted is the one the tensors hold.
    expect(smaller.summary.parameterCount).toBe(total - chosen.removedParams)
    const probe = [windows[0]]
    const forward = await createForward(pool, smaller)
    const rows = await forward.windowNll(probe).finally(() => forward.close())
    const got = rows[0].reduce((a, v) => a + v, 0) / rows[0].length

    // The gated model on the training engine, the removed units' and dimensions' gates set to 0.
    const reference = Float32Array.from(z)
    const perLayer = layout.groups + layout.neurons[0]
    for (let l = 0; l < layout.layers; l++) {
      for (let j = 0; j < layout.groups; j++) if (!chosen.units.groups[l].includes(j)) reference[l * perLayer + j] = 0
      for (let i = 0; i < layout.neurons[l]; i++)
        if (!chosen.units.neurons[l].includes(i)) reference[l * perLayer + layout.groups + i] = 0
    }
    const trainer = await LlamaTrainer.create(pool, model, null, 64, { temperature: 1, alpha: 0 })
    try {
      gates.setGates(reference)
      withGates(trainer, gates)
      const s = await trainer.accumulate(probe, 1)
      // Exact up to float rounding: the norms' √(H/H′) and ε·H/H′ (remove-hidden.ts) make RMSNorm over the
      // kept dimensions equal to RMSNorm over all of them with the removed ones at 0.
      expect(Math.abs(got / (s.ce / s.predictions) - 1)).toBeLessThan(1e-6)
    } finally {
      trainer.free()
    }
    // The training engine fine-tunes the narrower model (q/k/v/o wider than the hidden size, the teacher
    // wider still): its loss is the forward's.
    const narrow = await LlamaTrainer.create(pool, smaller, model, 64, { temperature: 1, alpha: 0.5 })
    try {
      const s = await narrow.accumulate(probe, 1)
      expect(Math.abs(got / (s.ce / s.predictions) - 1)).toBeLessThan(1e-5)
      expect(s.kl).toBeGreaterThan(0)
    } finally {
      narrow.free()
    }
  }, 60_000)
})
