// KV-cache quantization: the schemes on hand-built windows (expectations worked out independently) and
// the memory formula on stories260K's shape. The perplexity targets are in eval/perplexity-kv-cache.test.ts.

import { describe, expect, it } from 'vitest'
import { WhittleError } from '../errors'
import { roundToF16 } from '../numerics/float-encodings'
import {
  ggmlCacheLayout,
  kvCacheLabel,
  kvCacheMemory,
  llamaCppCacheFlags,
  parseKvCacheSetting,
  quantizeWindowKv,
} from './kv-cache-quant'

const STORIES_SHAPE = { layers: 5, kvHeads: 4, headDim: 8 }

function codeOf(f: () => unknown): string | undefined {
  try {
    f()
  } catch (e) {
    return e instanceof WhittleError ? e.code : 'not a WhittleError'
  }
  return undefined
}

describe('KV-cache settings', () => {
  it('parses the CLI syntax and prints it back', () => {
    for (const text of ['token:8', 'token:4', 'kivi:2', 'kivi:4:128', 'q8_0', 'q4_0', 'q4_1', 'q5_0', 'q5_1', 'iq4_nl'])
      expect(kvCacheLabel(parseKvCacheSetting(text))).toBe(text)
    expect(parseKvCacheSetting('kivi:2')).toEqual({ scheme: 'kivi', bits: 2, residual: 0 })
    expect(parseKvCacheSetting('Q8_0')).toEqual({ scheme: 'ggml', type: 'q8_0' })
  })

  it('rejects malformed settings as validation errors', () => {
    for (const bad of ['token', 'token:0', 'token:9', 'token:4:2', 'kivi', 'kivi:2:x', 'q8_0:4', 'q2_k', 'fp8:4', ''])
      expect(
        codeOf(() => parseKvCacheSetting(bad)),
        bad,
      ).toBe('validation')
  })

  it('gives llama.cpp flags for its cache types only', () => {
    expect(llamaCppCacheFlags(parseKvCacheSetting('q5_1'))?.flags).toMatch(/--cache-type-k q5_1 --cache-type-v q5_1/)
    expect(llamaCppCacheFlags(parseKvCacheSetting('token:4'))).toBeNull()
  })
})

describe('token scheme', () => {
  it('quantizes each (token, kv head) vector on its own min-max grid with round half to even', () => {
    // One token, two kv heads of 4. Head 0 at 2 bits: range [−1, 2], scale 1, zero 1; 0.5 rounds to 0.
    // Head 1 holds only positives, so its range is widened to 0: [0, 3], scale 1, zero 0; 1.5 → 2, 2.5 → 2.
    const k = new Float32Array([-1, 0, 0.5, 2, 3, 1.5, 2.5, 0.4])
    const v = new Float32Array(k)
    quantizeWindowKv({ scheme: 'token', bits: 2 }, k, v, 1, 2, 4)
    expect(Array.from(k)).toEqual([-1, 0, 0, 2, 3, 2, 2, 0])
    expect(Array.from(v)).toEqual(Array.from(k))
  })

  it('keeps an all-zero vector at zero', () => {
    const k = new Float32Array(8)
    const v = new Float32Array(8)
    quantizeWindowKv({ scheme: 'token', bits: 4 }, k, v, 2, 1, 4)
    expect(Array.from(k)).toEqual(new Array(8).fill(0))
  })
})

describe('kivi scheme', () => {
  // 40 tokens, one kv head of 2 channels: groups are tokens 0–31 and 32–39.
  const T = 40
  function window(): { k: Float32Array; v: Float32Array } {
    const k = new Float32Array(T * 2)
    const v = new Float32Array(T * 2)
    for (let t = 0; t < T; t++) {
      k[t * 2] = t / 31 // channel 0: 0 … 1 over the first group
      k[t * 2 + 1] = t === 35 ? 1000 : -t / 31 // channel 1: an outlier in the second group only
      v[t * 2] = 7.5 * 2 ** (t % 3)
      v[t * 2 + 1] = -7.5 * 2 ** (t % 3)
    }
    k[35 * 2] = 50
    return { k, v }
  }

  it('quantizes keys per channel over groups of 32 tokens from token 0, values per token', () => {
    const { k, v } = window()
    quantizeWindowKv({ scheme: 'kivi', bits: 4, residual: 0 }, k, v, T, 1, 2)
    // Channel 0, group 0 spans [0, 1]: scale 1/15, so every key lies on a multiple of 1/15.
    for (let t = 0; t < 32; t++) {
      expect(Math.abs(k[t * 2] - Math.round((t / 31) * 15) / 15)).toBeLessThan(1e-6)
    }
    // The outliers of token 35 sit in the second group; the first group's channel 1 keeps its own
    // fine grid [−1, 0] (error ≤ half of 1/15), untouched by them.
    for (let t = 0; t < 32; t++) expect(Math.abs(k[t * 2 + 1] + t / 31)).toBeLessThanOrEqual(0.5 / 15 + 1e-6)
    // Second group, channel 0: [0, 50], so 50 is the top code. Channel 1: [−39/31, 1000] with zero
    // round(1.26/66.75) = 0, so the top code decodes to 15·scale = 1000 + 39/31.
    expect(k[35 * 2]).toBeCloseTo(50, 4)
    expect(k[35 * 2 + 1]).toBeCloseTo(1000 + 39 / 31, 3)
    // Values per token: [7.5m, −7.5m] (m = 1, 2, 4) has scale m and zero 7.5 → 8 (half to even), so
    // 7.5m → code 16, clamped to 15 → 7m, and −7.5m → −8 + 8 = code 0 → −8m.
    for (let t = 0; t < T; t++) {
      const m = 2 ** (t % 3)
      expect([v[t * 2], v[t * 2 + 1]]).toEqual([7 * m, -8 * m])
    }
  })

  it('leaves the residual window of the last tokens in full precision', () => {
    const { k, v } = window()
    const before = { k: k.slice(), v: v.slice() }
    quantizeWindowKv({ scheme: 'kivi', bits: 2, residual: 8 }, k, v, T, 1, 2)
    expect(Array.from(k.subarray(64))).toEqual(Array.from(before.k.subarray(64)))
    expect(Array.from(v.subarray(64))).toEqual(Array.from(before.v.subarray(64)))
    expect(Array.from(k.subarray(0, 64))).not.toEqual(Array.from(before.k.subarray(0, 64)))
  })
})

describe("llama.cpp's cache types", () => {
  it('q8_0: each 32-value block scaled by its fp16 absmax / 127, rounded half away from zero', () => {
    const width = 32
    const k = new Float32Array(2 * width).map((_, i) => Math.sin(i * 1.7) * (i + 1))
    const v = new Float32Array(2 * width).map((_, i) => Math.cos(i * 0.3) - 0.2)
    const expected = (x: Float32Array): number[] => {
      const out: number[] = []
      for (let b = 0; b < x.length; b += 32) {
        let amax = 0
        for (let i = b; i < b + 32; i++) amax = Math.max(amax, Math.abs(x[i]))
        const d = Math.fround(amax / 127)
        const id = d ? Math.fround(1 / d) : 0
        for (let i = b; i < b + 32; i++) {
          const y = Math.fround(x[i] * id)
          const q = Math.sign(y) * Math.round(Math.abs(y))
          out.push(Math.fround(q * roundToF16(d)))
        }
      }
      return out
    }
    const ek = expected(k),
      ev = expected(v)
    quantizeWindowKv({ scheme: 'ggml', type: 'q8_0' }, k, v, 2, 4, 8)
    expect(Array.from(k)).toEqual(ek)
    expect(Array.from(v)).toEqual(ev)
  })

  it('says when head_dim is no whole number of blocks, and refuses when the cache row is not either', () => {
    expect(ggmlCacheLayout('q8_0', 4, 128)).toEqual({ rowLength: 128 })
    expect(ggmlCacheLayout('q4_0', 4, 8).rowLength).toBe(32)
    expect(ggmlCacheLayout('q4_0', 4, 8).note).toMatch(/llama\.cpp would refuse/)
    expect(codeOf(() => ggmlCacheLayout('q8_0', 3, 4))).toBe('unsupported')
    const w = new Float32Array(12)
    expect(codeOf(() => quantizeWindowKv({ scheme: 'ggml', type: 'q8_0' }, w, w.slice(), 1, 3, 4))).toBe('unsupported')
  })
})

describe('cache memory', () => {
  const mem = (s: string, L: number) => kvCacheMemory(STORIES_SHAPE, parseKvCacheSetting(s), L)

  it('counts values, scales and minimums per token of context (stories260K: 5 layers × 4 kv heads × 8)', () => {
    // f16: 5·4·8 values × (K, V) × 2 bytes.
    expect(mem('token:4', 256).baselineBytesPerToken).toBe(640)
    // token:4: per vector 4·8 bits + fp16 scale and minimum = 64 bits; K and V: 16 B per kv head.
    expect(mem('token:4', 256).bytesPerToken).toBe(320)
    expect(mem('token:4', 256).keyBits).toBe(8)
    // q8_0: 34 bytes per 32 values = 8.5 bits.
    expect(mem('q8_0', 100).bytesPerToken).toBe(340)
    // kivi:2: keys 2 + 32/32 bits, values 2 + 32/8 bits: 9 bits per (K, V) pair per channel.
    const kivi = mem('kivi:2', 64)
    expect([kivi.keyBits, kivi.valueBits]).toEqual([3, 6])
    expect(kivi.bytesPerToken).toBe(180)
    expect(kivi.savedBytes).toBe((640 - 180) * 64)
    // kivi:2:32 over 64 tokens: 32 tokens at 16 bits, the other 32 as above (one key group).
    expect(mem('kivi:2:32', 64).bytes).toBe((20 * (32 * 2 * 8 * 16 + (32 * 2 * 8 + 8 * 32) + 32 * (2 * 8 + 32))) / 8)
  })

  it('rejects a context length that is not a positive integer', () => {
    expect(codeOf(() => mem('token:4', 0))).toBe('validation')
  })
})
