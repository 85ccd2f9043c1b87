// Layer-wise distillation's loss, matching and gradients on small random states: the matching against the
// nearest student layer, the loss against its definition written out, the gradients against central
// differences of the loss. (Through the training engine's backward: compress/structure/cofi-gates.test.ts.)

import { describe, expect, it } from 'vitest'
import { LayerDistillation } from './layer-distillation'
import { seededRandom } from './seeded-random'

const H = 4,
  rows = 3

function randomStates(random: () => number, count: number): Float32Array[] {
  return Array.from({ length: count }, () => Float32Array.from({ length: rows * H }, () => 2 * random() - 1))
}

describe('layer distillation', () => {
  it('matches each teacher layer to the nearest mapped student layer; the loss is its weighted MSE', () => {
    const random = seededRandom(5)
    const teacher = randomStates(random, 2)
    // Student layer 2 is teacher layer 0 exactly; student layer 0 is teacher layer 1 plus a little noise.
    const student = randomStates(random, 3)
    student[2] = Float32Array.from(teacher[0])
    student[0] = teacher[1].map((v) => v + 0.01 * (random() - 0.5))
    const d = new LayerDistillation(H, 0.5)
    teacher.forEach((t, i) => d.captureTeacher(i, t))
    const scale = 1 / 7
    const { loss, grads } = d.studentPass((j) => student[j], 3, scale)
    expect(d.lastMatches.map((m) => m.student)).toEqual([2, 0])
    expect(d.lastMatches[0].mse).toBe(0)
    let sq = 0
    for (let e = 0; e < rows * H; e++) sq += (student[0][e] - teacher[1][e]) ** 2
    expect(d.lastMatches[1].mse).toBeCloseTo(sq / (rows * H), 12)
    expect(loss).toBeCloseTo((0.5 * scale * sq) / H, 12)
    expect(grads[1]).toBeNull()
    expect(grads[2]!.every((g) => g === 0)).toBe(true)
    expect(d.takeLoss()).toBe(loss)
    expect(d.takeLoss()).toBe(0)
  })

  it('∂loss/∂(student states) and ∂loss/∂W match central differences', () => {
    const random = seededRandom(11)
    const teacher = randomStates(random, 3)
    const student = randomStates(random, 2)
    const d = new LayerDistillation(H, 0.8)
    d.W.forEach((w, i) => (d.W[i] = w + 0.3 * (random() - 0.5)))
    teacher.forEach((t, i) => d.captureTeacher(i, t))
    const loss = (): number => {
      const probe = new LayerDistillation(H, 0.8)
      probe.W.set(d.W)
      teacher.forEach((t, i) => probe.captureTeacher(i, t))
      return probe.studentPass((j) => student[j], 2, 0.25).loss
    }
    const { grads } = d.studentPass((j) => student[j], 2, 0.25)
    const matched = d.lastMatches.map((m) => m.student)
    const h = 1e-3
    const central = (x: Float32Array, i: number): number => {
      const keep = x[i]
      x[i] = keep + h
      const up = loss()
      x[i] = keep - h
      const down = loss()
      x[i] = keep
      return (up - down) / (2 * h)
    }
    for (const j of new Set(matched))
      for (const i of [0, 5, rows * H - 1]) expect(grads[j]![i]).toBeCloseTo(central(student[j], i), 3)
    for (const i of [0, 3, 6, H * H - 1]) expect(d.gradW[i]).toBeCloseTo(central(d.W, i), 3)
    expect(d.gradW.some((g) => Math.abs(g) > 1e-2)).toBe(true)
  })

  it('an update moves W down its gradient and clears it', () => {
    const random = seededRandom(2)
    const [t] = randomStates(random, 1)
    const d = new LayerDistillation(H, 1)
    d.captureTeacher(0, t)
    const s = t.map((v) => 1.5 * v)
    const before = d.studentPass(() => s, 1, 1).loss
    const loss = d.update(0.05)
    expect(loss).toBe(before)
    expect(d.gradW.every((g) => g === 0)).toBe(true)
    expect(d.studentPass(() => s, 1, 1).loss).toBeLessThan(before)
  })
})
