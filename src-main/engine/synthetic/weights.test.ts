import { describe, expect, it } from 'vitest'
import { PRESETS } from './presets'
import { NormalStream, hashSeed } from './random'
import { DEFAULT_OUTLIERS, outlierChannels, planLlamaTensors, tensorChunks, type PlannedTensor } from './weights'

function concat(chunks: Iterable<Uint8Array>): Uint8Array {
  const list = [...chunks]
  const out = new Uint8Array(list.reduce((a, c) => a + c.length, 0))
  let at = 0
  for (const c of list) {
    out.set(c, at)
    at += c.length
  }
  return out
}

describe('synthetic values', () => {
  it('are normal with the requested spread', () => {
    const n = 1 << 20
    const values = new Float32Array(n)
    new NormalStream(hashSeed(3, 'stats')).fill(values, 0.02)
    let sum = 0
    for (const v of values) sum += v
    const mean = sum / n
    let m2 = 0
    let m4 = 0
    for (const v of values) {
      const d = v - mean
      m2 += d * d
      m4 += d * d * d * d
    }
    m2 /= n
    m4 /= n
    // Standard errors at n = 2^20: mean 2e-5, std ~1.4e-5, kurtosis ~5e-3.
    expect(Math.abs(mean)).toBeLessThan(1e-4)
    expect(Math.abs(Math.sqrt(m2) - 0.02)).toBeLessThan(1e-4)
    expect(Math.abs(m4 / (m2 * m2) - 3)).toBeLessThan(0.03)
  })

  it('do not depend on how a tensor is chunked', () => {
    // Odd column count, so chunks end in the middle of a normal pair.
    const t: PlannedTensor = {
      name: 'x',
      shape: [37, 33],
      kind: 'matrix',
      layer: 0,
      outlierColumns: [2, 31],
      outlierScale: 5,
    }
    for (const dtype of ['F32', 'BF16', 'F16'] as const) {
      const whole = concat(tensorChunks(t, 9, dtype, 1 << 20))
      const rowAtATime = concat(tensorChunks(t, 9, dtype, 1))
      const fiveRows = concat(tensorChunks(t, 9, dtype, 5 * 33 * 2))
      expect(rowAtATime).toEqual(whole)
      expect(fiveRows).toEqual(whole)
      expect(whole.length).toBe(37 * 33 * (dtype === 'F32' ? 4 : 2))
    }
  })

  it('depend on the seed and the tensor name', () => {
    const t: PlannedTensor = {
      name: 'a',
      shape: [4, 8],
      kind: 'matrix',
      layer: null,
      outlierColumns: [],
      outlierScale: 1,
    }
    const base = concat(tensorChunks(t, 1, 'F32'))
    expect(concat(tensorChunks(t, 1, 'F32'))).toEqual(base)
    expect(concat(tensorChunks(t, 2, 'F32'))).not.toEqual(base)
    expect(concat(tensorChunks({ ...t, name: 'b' }, 1, 'F32'))).not.toEqual(base)
  })

  it('choose distinct outlier channels per layer, fixed by the seed', () => {
    const a = outlierChannels(2048, 1, 0, 4)
    expect(new Set(a).size).toBe(4)
    expect(a.every((c) => Number.isInteger(c) && c >= 0 && c < 2048)).toBe(true)
    expect(outlierChannels(2048, 1, 0, 4)).toEqual(a)
    expect(outlierChannels(2048, 1, 1, 4)).not.toEqual(a)
    expect(outlierChannels(8, 1, 0, 20)).toEqual([0, 1, 2, 3, 4, 5, 6, 7])
  })

  it('plan the tensors of the real models', () => {
    const plan = planLlamaTensors(PRESETS['tinyllama-1.1b'], 1, DEFAULT_OUTLIERS)
    expect(plan).toHaveLength(1 + 22 * 9 + 2)
    const params = plan.reduce((a, t) => a + t.shape.reduce((x, y) => x * y, 1), 0)
    expect(params).toBe(1_100_048_384) // TinyLlama-1.1B's published parameter count
    const llama7b = planLlamaTensors(PRESETS['llama-7b'], 1, DEFAULT_OUTLIERS)
    expect(llama7b.reduce((a, t) => a + t.shape.reduce((x, y) => x * y, 1), 0)).toBe(6_738_415_616) // Llama-2-7B
  })
})
