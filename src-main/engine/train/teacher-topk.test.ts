// The teacher's top-k cache: the rebuilt row's KL is the top-k KL with the tail lumped (checked against a
// float64 computation of that formula), k = vocabulary reproduces the uncached loss and gradients bit for
// bit, and a repeated window skips the teacher's forward pass.

import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadModel, type LoadedModel } from '../model/loaded-model'
import { WorkerPool } from '../pool/worker-pool'
import { hasShared, referenceIds, shared, SKIP_SHARED } from '../testing/shared-data'
import { LlamaTrainer } from './llama-trainer'
import { seededRandom } from './seeded-random'
import { TeacherTopK, topK } from './teacher-topk'
import { referenceWindow, wandaStudent } from './testing/reference-protocol'

function randomLogits(V: number, seed: number, spread = 4): Float32Array {
  const r = seededRandom(seed)
  return Float32Array.from({ length: V }, () => (r() - 0.5) * 2 * spread)
}

function softmax64(z: Float32Array, temp: number): Float64Array {
  let m = -Infinity
  for (const v of z) m = Math.max(m, v / temp)
  const e = Float64Array.from(z, (v) => Math.exp(v / temp - m))
  const s = e.reduce((a, b) => a + b, 0)
  return e.map((v) => v / s)
}

function kl64(p: Float64Array, q: Float64Array): number {
  let k = 0
  for (let v = 0; v < p.length; v++) if (p[v] > 0) k += p[v] * Math.log(p[v] / q[v])
  return k
}

describe('top-k selection and the rebuilt teacher row', () => {
  it('topK returns the k largest, largest first, ties to the lower index', () => {
    const a = randomLogits(300, 1)
    a[17] = a[40] = 9 // a tie at the top
    const sorted = Array.from({ length: a.length }, (_, i) => i).sort((x, y) => a[y] - a[x] || x - y)
    for (const k of [1, 5, 64, 299, 300]) expect([...topK(a, k)]).toEqual(sorted.slice(0, k))
  })

  it('below the vocabulary, the KL of the rebuilt row is the top-k KL with the tail mass lumped', () => {
    const V = 200,
      temp = 2,
      k = 10
    const teacher = randomLogits(V, 2),
      student = randomLogits(V, 3)
    const cache = new TeacherTopK(k, V, 4, temp)
    cache.store(7, 1, teacher)
    const rebuilt = new Float32Array(V)
    cache.rebuild(7, 1, student, rebuilt)
    const p = softmax64(teacher, temp),
      q = softmax64(student, temp)
    const top = new Set(topK(teacher, k))
    let expected = 0,
      pTail = 0,
      qTail = 0
    for (let v = 0; v < V; v++) {
      if (top.has(v)) expected += p[v] * Math.log(p[v] / q[v])
      else {
        pTail += p[v]
        qTail += q[v]
      }
    }
    expected += pTail * Math.log(pTail / qTail)
    const pr = softmax64(rebuilt, temp)
    expect(kl64(pr, q)).toBeCloseTo(expected, 5)
    // The top-k keep their probabilities; the full KL differs (the approximation is real).
    for (const v of top) expect(pr[v]).toBeCloseTo(p[v], 6)
    expect(Math.abs(kl64(p, q) - expected)).toBeGreaterThan(1e-4)
  })

  it('with k = vocabulary the rebuilt row is the teacher row itself', () => {
    const V = 64
    const teacher = randomLogits(V, 4)
    const cache = new TeacherTopK(1000, V, 2, 2)
    expect(cache.k).toBe(V)
    cache.store(0, 0, teacher)
    const out = new Float32Array(V)
    cache.rebuild(0, 0, randomLogits(V, 5), out)
    expect(out).toEqual(teacher)
  })
})

describe.skipIf(!hasShared)(
  `the cache in the trainer on stories260K (${hasShared ? 'reference data present' : SKIP_SHARED})`,
  () => {
    let pool: WorkerPool
    let model: LoadedModel
    const T = 64
    const scale = 1 / (4 * (T - 1))
    const windows = (): Int32Array[] =>
      Array.from({ length: 4 }, (_, j) => referenceWindow(referenceIds('tinystories_calib'), j, T))
    const keys = [0, 1, 2, 3]

    beforeAll(async () => {
      pool = await WorkerPool.create({ threads: 2 })
      model = await loadModel(shared('models/stories260K'))
    })
    afterAll(() => pool?.close())

    /** Two passes over the same 4 windows (no optimizer step between, so both see the same student). */
    async function twoEpochs(
      topk: number,
    ): Promise<{ sums: number[]; grads: Float32Array[][]; teacherPasses: number }> {
      const trainer = await LlamaTrainer.create(pool, await wandaStudent(model), model, T, {
        temperature: 2,
        alpha: 0.5,
      })
      try {
        trainer.cacheTeacherTopK(topk)
        const sums: number[] = [],
          grads: Float32Array[][] = []
        for (let epoch = 0; epoch < 2; epoch++) {
          trainer.zeroGrads()
          const s = await trainer.accumulate(windows(), scale, undefined, keys)
          sums.push(s.ce, s.kl)
          grads.push(trainer.params.map((p) => p.grad.view().slice()))
        }
        return { sums, grads, teacherPasses: trainer.teacherPasses }
      } finally {
        trainer.free()
      }
    }

    it('k = vocabulary equals the uncached loss and gradients exactly, and skips the teacher on the repeat', async () => {
      const plain = await twoEpochs(0)
      const cached = await twoEpochs(512)
      expect(plain.teacherPasses).toBe(2)
      expect(cached.teacherPasses).toBe(1)
      expect(cached.sums).toEqual(plain.sums)
      for (let e = 0; e < 2; e++) cached.grads[e].forEach((g, i) => expect(g).toEqual(plain.grads[e][i]))
      expect(plain.sums[1]).toBeGreaterThan(0)
    })

    it('a small k skips the teacher too, with the CE unchanged and the KL close to the full one', async () => {
      const plain = await twoEpochs(0)
      const cached = await twoEpochs(32)
      expect(cached.teacherPasses).toBe(1)
      expect(cached.sums[0]).toBe(plain.sums[0]) // first epoch: the teacher ran, nothing approximated
      expect(cached.sums[1]).toBe(plain.sums[1])
      expect(cached.sums[2]).toBe(plain.sums[2]) // the CE never depends on the teacher
      // Lumping the tail can only lose information (the data-processing inequality): KL_top-k ≤ KL, and
      // with 32 of 512 tokens it keeps most of it.
      expect(cached.sums[3]).toBeLessThan(plain.sums[3])
      expect(cached.sums[3]).toBeGreaterThan(0.8 * plain.sums[3])
    })
  },
)
