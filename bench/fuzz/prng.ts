// A small seeded PRNG. Every case derives its own generator from (seed, format, case index), so any case
// can be regenerated on its own: the supervisor rebuilds a hung case's input from its index alone.

/** splitmix32-style hash of a string and numbers into one 32-bit state. */
function hash(parts: (string | number)[]): number {
  let h = 0x9e3779b9
  for (const p of parts) {
    const s = String(p)
    for (let i = 0; i < s.length; i++) {
      h = Math.imul(h ^ s.charCodeAt(i), 0x85ebca6b)
      h ^= h >>> 13
    }
    h = Math.imul(h ^ 0x2f, 0xc2b2ae35)
    h ^= h >>> 16
  }
  return h >>> 0
}

export class Rng {
  private state: number

  constructor(...parts: (string | number)[]) {
    this.state = hash(parts) || 1
  }

  /** Uniform in [0, 2^32). mulberry32. */
  u32(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0
    let t = this.state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return (t ^ (t >>> 14)) >>> 0
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return n <= 1 ? 0 : Math.floor((this.u32() / 4294967296) * n)
  }

  /** Uniform in [0, 1). */
  float(): number {
    return this.u32() / 4294967296
  }

  chance(p: number): boolean {
    return this.float() < p
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]
  }

  /** A small non-negative integer, biased towards small values (how many bytes to insert, etc.). */
  small(max: number): number {
    return Math.min(max, Math.floor(Math.pow(2, this.float() * Math.log2(max + 1))) - 1 + this.int(2))
  }

  /** Picks a key of `weights` with probability proportional to its value. */
  weighted<K extends string>(weights: Record<K, number>): K {
    const entries = Object.entries(weights) as [K, number][]
    let r = this.float() * entries.reduce((a, [, w]) => a + w, 0)
    for (const [k, w] of entries) {
      r -= w
      if (r < 0) return k
    }
    return entries[entries.length - 1][0]
  }
}
