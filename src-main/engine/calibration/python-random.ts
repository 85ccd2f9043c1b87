// Python's `random` module for integer seeds: MT19937 seeded through init_by_array, and randint via
// getrandbits rejection sampling. The GPTQ family of reference scripts draws calibration windows with
// `random.seed(0); random.randint(0, N - seqlen - 1)`, so reproducing their windows exactly needs this.

const N = 624
const M = 397

export class PythonRandom {
  private readonly mt = new Uint32Array(N)
  private index = N + 1

  constructor(seed: number) {
    if (!Number.isSafeInteger(seed) || seed < 0)
      throw new RangeError(`seed must be a non-negative integer (got ${seed})`)
    // Python splits |seed| into 32-bit words, least significant first; 0 becomes the single word [0].
    const key: number[] = []
    let s = seed
    do {
      key.push(s % 2 ** 32)
      s = Math.floor(s / 2 ** 32)
    } while (s > 0)
    this.initByArray(key)
  }

  private initGenrand(s: number): void {
    const mt = this.mt
    mt[0] = s >>> 0
    for (let i = 1; i < N; i++) {
      const prev = mt[i - 1] ^ (mt[i - 1] >>> 30)
      mt[i] = (Math.imul(1812433253, prev) + i) >>> 0
    }
    this.index = N
  }

  private initByArray(key: number[]): void {
    const mt = this.mt
    this.initGenrand(19650218)
    let i = 1
    let j = 0
    for (let k = Math.max(N, key.length); k > 0; k--) {
      const prev = mt[i - 1] ^ (mt[i - 1] >>> 30)
      mt[i] = ((mt[i] ^ Math.imul(prev, 1664525)) + key[j] + j) >>> 0
      i++
      j++
      if (i >= N) {
        mt[0] = mt[N - 1]
        i = 1
      }
      if (j >= key.length) j = 0
    }
    for (let k = N - 1; k > 0; k--) {
      const prev = mt[i - 1] ^ (mt[i - 1] >>> 30)
      mt[i] = ((mt[i] ^ Math.imul(prev, 1566083941)) - i) >>> 0
      i++
      if (i >= N) {
        mt[0] = mt[N - 1]
        i = 1
      }
    }
    mt[0] = 0x80000000
  }

  private twist(): void {
    const mt = this.mt
    for (let k = 0; k < N; k++) {
      const y = (mt[k] & 0x80000000) | (mt[(k + 1) % N] & 0x7fffffff)
      mt[k] = (mt[(k + M) % N] ^ (y >>> 1) ^ (y & 1 ? 0x9908b0df : 0)) >>> 0
    }
    this.index = 0
  }

  /** genrand_uint32 */
  nextUint32(): number {
    if (this.index >= N) this.twist()
    let y = this.mt[this.index++]
    y ^= y >>> 11
    y = (y ^ ((y << 7) & 0x9d2c5680)) >>> 0
    y = (y ^ ((y << 15) & 0xefc60000)) >>> 0
    y ^= y >>> 18
    return y >>> 0
  }

  /** getrandbits(k) for 1 ≤ k ≤ 32 */
  getrandbits(k: number): number {
    return this.nextUint32() >>> (32 - k)
  }

  /** randint(a, b): uniform on [a, b], inclusive, as Python draws it. */
  randint(a: number, b: number): number {
    const n = b - a + 1
    if (!(n >= 1) || n > 2 ** 32) throw new RangeError(`randint range [${a}, ${b}] is empty or too wide`)
    const k = Math.floor(Math.log2(n)) + 1 // n.bit_length()
    let r = this.getrandbits(Math.min(k, 32))
    while (r >= n) r = this.getrandbits(Math.min(k, 32))
    return a + r
  }
}
