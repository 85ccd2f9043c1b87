import { describe, expect, it, beforeAll } from 'vitest'
import {
  emptyMoments,
  finishStats,
  mergeMoments,
  moments,
  MOMENTS_LENGTH,
  MOMENT_ABSMAX,
  MOMENT_COUNT,
  MOMENT_INF,
  MOMENT_M2,
  MOMENT_M3,
  MOMENT_M4,
  MOMENT_MAX,
  MOMENT_MEAN,
  MOMENT_MIN,
  MOMENT_NAN,
  MOMENT_ZERO,
} from '../reference/stats'
import {
  firstBitDifference,
  loadKernels,
  normalish,
  ODD_SIZES,
  rng,
  withSpecials,
  type KernelHarness,
} from '../testing/kernel-harness'

let h: KernelHarness
beforeAll(async () => {
  h = await loadKernels()
})

function wasmMoments(data: Float32Array, misalign = 0): Float64Array {
  h.reset()
  const ptr = h.put(data, misalign)
  const out = h.alloc(MOMENTS_LENGTH * 8)
  h.k.moments(ptr, data.length, out)
  return h.f64(out, MOMENTS_LENGTH).slice()
}

/** The textbook computation, written independently: sequential f64 sums over the finite values. */
function naiveMoments(data: Float32Array): Float64Array {
  const finite = Array.from(data).filter((x) => Number.isFinite(x))
  const n = finite.length
  const mean = n ? finite.reduce((s, x) => s + x, 0) / n : 0
  const central = (k: number) => finite.reduce((s, x) => s + (x - mean) ** k, 0)
  const m = emptyMoments()
  m[MOMENT_COUNT] = n
  m[MOMENT_NAN] = Array.from(data).filter(Number.isNaN).length
  m[MOMENT_INF] = Array.from(data).filter((x) => x === Infinity || x === -Infinity).length
  m[MOMENT_ZERO] = finite.filter((x) => x === 0).length
  if (n) {
    m[MOMENT_MIN] = Math.min(...finite)
    m[MOMENT_MAX] = Math.max(...finite)
    m[MOMENT_ABSMAX] = Math.max(...finite.map(Math.abs))
  }
  m[MOMENT_MEAN] = mean
  m[MOMENT_M2] = central(2)
  m[MOMENT_M3] = central(3)
  m[MOMENT_M4] = central(4)
  return m
}

function expectClose(actual: Float64Array, expected: Float64Array, rel: number): void {
  for (let i = 0; i < MOMENTS_LENGTH; i++) {
    const a = actual[i],
      e = expected[i]
    if (!Number.isFinite(e)) {
      expect(a).toBe(e)
      continue
    }
    // Scale for the error: the value itself, or for central sums the size of their terms.
    const scale = Math.max(Math.abs(e), i >= MOMENT_MEAN ? Math.abs(expected[MOMENT_M2]) * 1e-3 : 0, 1e-300)
    expect(Math.abs(a - e) / scale, `index ${i}: ${a} vs ${e}`).toBeLessThan(rel)
  }
}

describe('moments', () => {
  it('matches the twin bit for bit on odd sizes, with and without special values', () => {
    const random = rng(1)
    for (const n of [...ODD_SIZES, 100_003]) {
      for (const specials of [false, true]) {
        let data = normalish(random, n, 0.02, 0.001)
        if (specials) data = withSpecials(data, random, 5)
        const ref = moments(data)
        expect(firstBitDifference(wasmMoments(data, 4 * (n % 3)), ref), `n=${n}`).toBe(-1)
      }
    }
  })

  it('agrees with a naive two-pass computation', () => {
    const random = rng(2)
    for (const n of [1, 5, 17, 1000, 4099]) {
      for (const [scale, offset] of [
        [1, 0],
        [0.02, 0],
        [1, 1000],
        [1e-3, -3],
      ]) {
        const data = withSpecials(normalish(random, n, scale, offset), random, 11).map((x) =>
          Number.isFinite(x) && Math.abs(x) > 1e30 ? 1 : x,
        ) // keep M4 finite
        expectClose(wasmMoments(data), naiveMoments(data), 1e-9)
      }
    }
  })

  it('gets the sign of a zero minimum or maximum right', () => {
    const random = rng(6)
    const values = [0, -0, 1, -1, NaN, 0, -0]
    for (let trial = 0; trial < 2000; trial++) {
      const n = 1 + Math.floor(random() * 13)
      const data = Float32Array.from({ length: n }, () => values[Math.floor(random() * values.length)])
      const got = wasmMoments(data)
      expect(firstBitDifference(got, moments(data)), Array.from(data).join(',')).toBe(-1)
      const finite = Array.from(data).filter((x) => !Number.isNaN(x))
      if (finite.length) {
        expect(Object.is(got[MOMENT_MIN], Math.min(...finite))).toBe(true)
        expect(Object.is(got[MOMENT_MAX], Math.max(...finite))).toBe(true)
      }
    }
  })

  it('counts and range of special values', () => {
    const data = Float32Array.from([NaN, Infinity, -Infinity, 0, -0, 2, -3, NaN, 5e-45])
    const m = wasmMoments(data)
    expect(m[MOMENT_COUNT]).toBe(5)
    expect(m[MOMENT_NAN]).toBe(2)
    expect(m[MOMENT_INF]).toBe(2)
    expect(m[MOMENT_ZERO]).toBe(2)
    expect(m[MOMENT_MIN]).toBe(-3)
    expect(m[MOMENT_MAX]).toBe(2)
    expect(m[MOMENT_ABSMAX]).toBe(3)
  })

  it('of nothing finite is the empty moments', () => {
    expect(firstBitDifference(wasmMoments(new Float32Array(0)), emptyMoments())).toBe(-1)
    const m = wasmMoments(Float32Array.from([NaN, Infinity, NaN, NaN, -Infinity]))
    expect(m[MOMENT_COUNT]).toBe(0)
    expect(m[MOMENT_MIN]).toBe(Infinity)
    expect(m[MOMENT_MAX]).toBe(-Infinity)
    expect(m[MOMENT_MEAN]).toBe(0)
    expect(m[MOMENT_M2]).toBe(0)
  })
})

describe('mergeMoments', () => {
  it('of the parts agrees with the moments of the whole', () => {
    const random = rng(3)
    const data = withSpecials(normalish(random, 10_000, 0.05, 0.3), random, 50).map((x) =>
      Number.isFinite(x) && Math.abs(x) > 1e30 ? -0.5 : x,
    )
    const whole = moments(data)
    for (const cuts of [[5000], [1, 2, 3], [17, 4099, 4100, 9999], [0, 10_000]]) {
      let merged = emptyMoments()
      let start = 0
      for (const end of [...cuts, data.length]) {
        merged = mergeMoments(merged, moments(data.subarray(start, end)))
        start = end
      }
      expect(merged[MOMENT_COUNT]).toBe(whole[MOMENT_COUNT])
      expect(merged[MOMENT_NAN]).toBe(whole[MOMENT_NAN])
      expect(merged[MOMENT_ZERO]).toBe(whole[MOMENT_ZERO])
      expect(merged[MOMENT_MIN]).toBe(whole[MOMENT_MIN])
      expect(merged[MOMENT_MAX]).toBe(whole[MOMENT_MAX])
      expect(merged[MOMENT_ABSMAX]).toBe(whole[MOMENT_ABSMAX])
      expectClose(merged, whole, 1e-10)
    }
  })

  it('with empty moments is the identity, exactly', () => {
    const m = moments(Float32Array.from([1, 2, 3.5, -7]))
    expect(firstBitDifference(mergeMoments(emptyMoments(), m), m)).toBe(-1)
    expect(firstBitDifference(mergeMoments(m, emptyMoments()), m)).toBe(-1)
    expect(firstBitDifference(mergeMoments(emptyMoments(), emptyMoments()), emptyMoments())).toBe(-1)
  })

  it('of two single values gives their known moments', () => {
    const m = mergeMoments(moments(Float32Array.of(1)), moments(Float32Array.of(3)))
    expect(m[MOMENT_MEAN]).toBe(2)
    expect(m[MOMENT_M2]).toBe(2)
    expect(m[MOMENT_M3]).toBe(0)
    expect(m[MOMENT_M4]).toBe(2)
  })
})

describe('finishStats', () => {
  it('gives population std and Pearson kurtosis', () => {
    const s = finishStats(moments(Float32Array.from([1, 2, 3, 4])))
    expect(s.count).toBe(4)
    expect(s.mean).toBe(2.5)
    expect(s.std).toBeCloseTo(Math.sqrt(1.25), 14)
    // M2 = 5, M4 = 2 * 1.5^4 + 2 * 0.5^4 = 10.25; kurtosis = 4 * 10.25 / 25.
    expect(s.kurtosis).toBeCloseTo(1.64, 14)
    expect(s.min).toBe(1)
    expect(s.max).toBe(4)
    expect(s.absmax).toBe(4)
  })

  it('is near 3 for normal data', () => {
    const random = rng(4)
    const n = 200_000
    const data = new Float32Array(n)
    for (let i = 0; i < n; i += 2) {
      // Box-Muller
      const r = Math.sqrt(-2 * Math.log(1 - random())),
        t = 2 * Math.PI * random()
      data[i] = r * Math.cos(t)
      data[i + 1] = r * Math.sin(t)
    }
    const s = finishStats(wasmMoments(data))
    expect(s.kurtosis).toBeGreaterThan(2.9)
    expect(s.kurtosis).toBeLessThan(3.1)
    expect(s.std).toBeCloseTo(1, 1)
  })

  it('counts zeros over all values and handles the degenerate cases', () => {
    const s = finishStats(moments(Float32Array.from([0, -0, NaN, Infinity, 5])))
    expect(s.zeroFraction).toBe(2 / 5)
    expect(s.nanCount).toBe(1)
    expect(s.infCount).toBe(1)
    expect(s.count).toBe(3)
    const constant = finishStats(moments(new Float32Array(10).fill(0.25)))
    expect(constant.std).toBe(0)
    expect(constant.kurtosis).toBe(0)
    const none = finishStats(emptyMoments())
    expect(none).toMatchObject({ count: 0, min: 0, max: 0, mean: 0, std: 0, kurtosis: 0, zeroFraction: 0 })
    expect(JSON.parse(JSON.stringify(none))).toEqual(none)
  })
})
