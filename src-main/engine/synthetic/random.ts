// Seeded randomness for synthetic weights. Each tensor gets its own xoshiro128** stream, seeded from the
// model seed and the tensor's name, so a tensor's values do not depend on which others are generated or in
// what chunks. Normals are exact (not a sum-of-uniforms approximation), so kurtosis is 3 before outliers.

/** FNV-1a over the UTF-16 code units, then the seed mixed in: a 32-bit key per (seed, label). */
export function hashSeed(seed: number, label: string): number {
  let h = 0x811c9dc5 ^ (seed >>> 0)
  for (let i = 0; i < label.length; i++) {
    h ^= label.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  // A final avalanche so that nearby seeds give unrelated streams.
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}

/** xoshiro128** (Blackman & Vigna), state filled by splitmix32 so any 32-bit seed is fine. */
export class Xoshiro128 {
  private a: number
  private b: number
  private c: number
  private d: number

  constructor(seed: number) {
    let s = seed >>> 0
    const next = (): number => {
      s = (s + 0x9e3779b9) >>> 0
      let z = s
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b)
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35)
      return (z ^ (z >>> 16)) >>> 0
    }
    this.a = next()
    this.b = next()
    this.c = next()
    this.d = next()
  }

  /** Uniform 32-bit unsigned integer. */
  nextU32(): number {
    const result = Math.imul(rotl(Math.imul(this.b, 5), 7), 9)
    const t = this.b << 9
    this.c ^= this.a
    this.d ^= this.b
    this.b ^= this.c
    this.a ^= this.d
    this.c ^= t
    this.d = rotl(this.d, 11)
    return result >>> 0
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k))
}

/**
 * A stream of standard normals by Marsaglia's polar method (exact like Box–Muller, but without the trig
 * calls, about 1.5× faster in V8). It makes them in pairs; the spare is kept for the next call.
 */
export class NormalStream {
  private readonly rng: Xoshiro128
  private spare = 0
  private hasSpare = false

  constructor(seed: number) {
    this.rng = new Xoshiro128(seed)
  }

  /** Two independent normals into pair[0], pair[1]. */
  private pair(pair: Float64Array): void {
    const rng = this.rng
    for (;;) {
      const u = rng.nextU32() / 2147483648 - 1
      const v = rng.nextU32() / 2147483648 - 1
      const s = u * u + v * v
      if (s >= 1 || s === 0) continue
      const f = Math.sqrt((-2 * Math.log(s)) / s)
      pair[0] = u * f
      pair[1] = v * f
      return
    }
  }

  private readonly scratch = new Float64Array(2)

  next(): number {
    if (this.hasSpare) {
      this.hasSpare = false
      return this.spare
    }
    this.pair(this.scratch)
    this.spare = this.scratch[1]
    this.hasSpare = true
    return this.scratch[0]
  }

  /** Fills `out` with N(0, std²) values. */
  fill(out: Float32Array, std: number): void {
    let i = 0
    if (this.hasSpare && out.length > 0) {
      out[i++] = std * this.spare
      this.hasSpare = false
    }
    const rng = this.rng
    while (i + 1 < out.length) {
      const u = rng.nextU32() / 2147483648 - 1
      const v = rng.nextU32() / 2147483648 - 1
      const s = u * u + v * v
      if (s >= 1 || s === 0) continue
      // Same operations in the same order as next(), so values never depend on where a chunk ends.
      const f = Math.sqrt((-2 * Math.log(s)) / s)
      out[i++] = std * (u * f)
      out[i++] = std * (v * f)
    }
    if (i < out.length) out[i] = std * this.next()
  }

  /** A uniform integer in [0, n). */
  nextInt(n: number): number {
    return Math.floor((this.rng.nextU32() / 4294967296) * n)
  }
}
