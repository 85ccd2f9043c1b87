// The forward-pass kernels (kernels/assembly/{matmul,norm,rope,attention,activation,softmax}.ts) against
// their TS twins, bit for bit, and against naive f64 implementations written here, within f32 tolerance.
// Needs the kernel build: `npm run build:kernels`.

import { beforeAll, describe, expect, it } from 'vitest'
import { compileKernels, createKernelMemory, instantiateKernels } from '../host/load'
import { addBiasRows, addInplace, erfc64, geluErf, geluTanh, relu, siluMul } from '../reference/activation'
import { attentionCausal, attentionScratch } from '../reference/attention'
import { matmulNT, matmulNTBias } from '../reference/matmul'
import { layernorm, rmsnorm } from '../reference/norm'
import { ropeHalf, ropeInterleaved, ropeTable } from '../reference/rope'
import { exp64, expF32, log64, logSoftmaxNll, SOFTMAX_EXP2_MIN, softmaxExp2F32 } from '../reference/softmax'
import { KernelArgumentError } from '../reference/errors'

/** The exports under test (pointers are byte addresses; see the kernel files for semantics). */
interface ForwardExports {
  heap_base(): number
  matmul_nt(x: number, w: number, y: number, T: number, K: number, N: number, n0: number, n1: number): void
  matmul_nt_bias(
    x: number,
    w: number,
    b: number,
    y: number,
    T: number,
    K: number,
    N: number,
    n0: number,
    n1: number,
  ): void
  rmsnorm(x: number, w: number, out: number, T: number, H: number, eps: number): void
  layernorm(x: number, w: number, b: number, out: number, T: number, H: number, eps: number): void
  rope_half(x: number, cos: number, sin: number, T: number, nHeads: number, headDim: number): void
  rope_interleaved(x: number, cos: number, sin: number, T: number, nHeads: number, headDim: number): void
  attention_causal(
    q: number,
    k: number,
    v: number,
    out: number,
    scratch: number,
    T: number,
    nHeads: number,
    nKV: number,
    headDim: number,
    h0: number,
    h1: number,
  ): void
  silu_mul(g: number, u: number, out: number, n: number): void
  gelu_tanh(x: number, out: number, n: number): void
  gelu_erf(x: number, out: number, n: number): void
  relu(x: number, out: number, n: number): void
  add_inplace(a: number, b: number, n: number): void
  add_bias_rows(x: number, b: number, T: number, N: number): void
  log_softmax_nll(logits: number, targets: number, nll: number, T: number, V: number): void
  softmax_exp2_min(): number
  softmax_exp2(x: number, out: number, n: number): void
}

let k: ForwardExports
let memory: WebAssembly.Memory
let next = 0

beforeAll(async () => {
  memory = createKernelMemory()
  k = instantiateKernels(await compileKernels(), memory) as unknown as ForwardExports
  const missing = ['matmul_nt', 'rmsnorm', 'rope_half', 'attention_causal', 'silu_mul', 'log_softmax_nll'].filter(
    (name) => typeof (k as unknown as Record<string, unknown>)[name] !== 'function',
  )
  if (missing.length) throw new Error(`kernels.wasm lacks ${missing.join(', ')}: run npm run build:kernels`)
})

// A bump allocator over the shared memory, reset by every test. `skew` (a multiple of 4) moves a buffer
// off 16-byte alignment: the forward pass hands the kernels row offsets, not aligned blocks.
function resetHeap(): void {
  next = (k.heap_base() + 15) & ~15
}
function alloc(bytes: number, skew = 0): number {
  const ptr = ((next + 15) & ~15) + skew
  next = ptr + bytes
  const have = memory.buffer.byteLength
  if (next > have) memory.grow(Math.ceil((next - have) / 65536))
  return ptr
}
function putF32(a: ArrayLike<number>, skew = 0): number {
  const ptr = alloc(a.length * 4, skew)
  new Float32Array(memory.buffer, ptr, a.length).set(a)
  return ptr
}
function getF32(ptr: number, n: number): Float32Array {
  return new Float32Array(memory.buffer, ptr, n).slice()
}

/** Deterministic values in [-scale, scale). */
function random(n: number, seed: number, scale = 1): Float32Array {
  let s = seed >>> 0
  const out = new Float32Array(n)
  for (let i = 0; i < n; i++) {
    s = (s + 0x6d2b79f5) >>> 0
    let t = Math.imul(s ^ (s >>> 15), 1 | s)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    out[i] = ((((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1) * scale
  }
  return out
}

/** Bitwise equality (so −0 ≠ +0), except that any NaN equals any NaN (wasm may canonicalise them). */
function expectSameBits(
  actual: Float32Array | Float64Array,
  expected: Float32Array | Float64Array,
  what: string,
): void {
  expect(actual.length, what).toBe(expected.length)
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i],
      e = expected[i]
    if (Number.isNaN(a) && Number.isNaN(e)) continue
    if (!Object.is(a, e)) throw new Error(`${what}: element ${i} is ${a}, twin says ${e}`)
  }
}

/** attention_causal over every head, by the kernel (fresh heap) and by the twin. */
function attentionBothWays(
  q: Float32Array,
  kk: Float32Array,
  v: Float32Array,
  T: number,
  nHeads: number,
  nKV: number,
  d: number,
): { got: Float32Array; twin: Float32Array } {
  resetHeap()
  const pq = putF32(q),
    pk = putF32(kk),
    pv = putF32(v),
    po = alloc(q.length * 4)
  k.attention_causal(pq, pk, pv, po, alloc(attentionScratch(T) * 4), T, nHeads, nKV, d, 0, nHeads)
  const twin = new Float32Array(q.length)
  attentionCausal(q, kk, v, twin, new Float32Array(attentionScratch(T)), T, nHeads, nKV, d)
  return { got: getF32(po, q.length), twin }
}

describe('matmul_nt / matmul_nt_bias', () => {
  const shapes: [number, number, number][] = [
    [1, 1, 1],
    [1, 5, 3],
    [3, 7, 5],
    [7, 33, 17],
    [5, 64, 10],
    [8, 64, 7], // K a multiple of 4: lane sums finished four at a time, in every tile shape
    [6, 128, 13],
    [4, 130, 9],
    [9, 1027, 35],
    [12, 256, 64],
  ]

  it.each(shapes)('T=%i K=%i N=%i matches the twin bit for bit, and a naive f64 product', (T, K, N) => {
    resetHeap()
    const x = random(T * K, T * 100 + K, 2),
      w = random(N * K, N * 7 + K),
      b = random(N, 5)
    const px = putF32(x, 4),
      pw = putF32(w),
      pb = putF32(b, 8),
      py = alloc(T * N * 4),
      pyb = alloc(T * N * 4, 4)
    k.matmul_nt(px, pw, py, T, K, N, 0, N)
    k.matmul_nt_bias(px, pw, pb, pyb, T, K, N, 0, N)
    const twin = new Float32Array(T * N),
      twinBias = new Float32Array(T * N)
    matmulNT(x, w, twin, T, K, N)
    matmulNTBias(x, w, b, twinBias, T, K, N)
    expectSameBits(getF32(py, T * N), twin, 'matmul_nt')
    expectSameBits(getF32(pyb, T * N), twinBias, 'matmul_nt_bias')
    // Independent: f64 triple loop; f32 summation error is bounded by ~(K/4 + 3)·2⁻²⁴·Σ|x·w|.
    for (let t = 0; t < T; t++) {
      for (let n = 0; n < N; n++) {
        let exact = 0,
          magnitude = 0
        for (let j = 0; j < K; j++) {
          exact += x[t * K + j] * w[n * K + j]
          magnitude += Math.abs(x[t * K + j] * w[n * K + j])
        }
        const bound = (K / 4 + 3) * 2 ** -24 * magnitude + 1e-30
        expect(Math.abs(twin[t * N + n] - exact)).toBeLessThanOrEqual(bound)
        expect(Math.abs(twinBias[t * N + n] - (exact + b[n]))).toBeLessThanOrEqual(
          bound + 2 ** -24 * Math.abs(exact + b[n]),
        )
      }
    }
  })

  it('splits the outputs into [n0, n1) ranges without touching the rest', () => {
    resetHeap()
    const T = 6,
      K = 37,
      N = 23
    const x = random(T * K, 1),
      w = random(N * K, 2)
    const px = putF32(x),
      pw = putF32(w),
      py = putF32(new Float32Array(T * N).fill(-777))
    k.matmul_nt(px, pw, py, T, K, N, 5, 14)
    const partial = getF32(py, T * N)
    const full = new Float32Array(T * N)
    matmulNT(x, w, full, T, K, N)
    for (let t = 0; t < T; t++) {
      for (let n = 0; n < N; n++) {
        expect(partial[t * N + n]).toBe(n >= 5 && n < 14 ? full[t * N + n] : -777)
      }
    }
    for (const [n0, n1] of [
      [0, 5],
      [14, 23],
    ])
      k.matmul_nt(px, pw, py, T, K, N, n0, n1)
    expectSameBits(getF32(py, T * N), full, 'matmul_nt pieced together')
  })

  it('the twin rejects wrong sizes with a KernelArgumentError', () => {
    const y = new Float32Array(6)
    expect(() => matmulNT(new Float32Array(6), new Float32Array(5), y, 2, 3, 2)).toThrow(KernelArgumentError)
    expect(() => matmulNT(new Float32Array(6), new Float32Array(6), y, 2, 3, 2, 1, 3)).toThrow(/output range/)
    expect(() => matmulNT(new Float32Array(6), new Float32Array(6), y, 2, 3.5, 2)).toThrow(/not a non-negative integer/)
  })

  it('prints matmul_nt throughput at T=64, K=N=1024 (informational, never asserted)', () => {
    resetHeap()
    const T = 64,
      K = 1024,
      N = 1024
    const x = random(T * K, 3),
      w = random(N * K, 4)
    const px = putF32(x),
      pw = putF32(w),
      py = alloc(T * N * 4)
    k.matmul_nt(px, pw, py, T, K, N, 0, N)
    const reps = 5
    let t0 = performance.now()
    for (let r = 0; r < reps; r++) k.matmul_nt(px, pw, py, T, K, N, 0, N)
    const wasmMs = (performance.now() - t0) / reps
    const y = new Float32Array(T * N)
    t0 = performance.now()
    matmulNT(x, w, y, T, K, N)
    const twinMs = performance.now() - t0
    const gflop = (2 * T * K * N) / 1e9
    console.log(
      `matmul_nt T=${T} K=${K} N=${N}: wasm ${((gflop / wasmMs) * 1e3).toFixed(1)} GFLOP/s, ` +
        `TS twin ${((gflop / twinMs) * 1e3).toFixed(2)} GFLOP/s (one thread)`,
    )
  })
})

describe('rmsnorm / layernorm', () => {
  const shapes: [number, number][] = [
    [1, 1],
    [3, 5],
    [7, 64],
    [3, 67],
    [2, 1030],
  ]

  it.each(shapes)('T=%i H=%i match the twins bit for bit and naive f64 norms', (T, H) => {
    resetHeap()
    const x = random(T * H, T + H * 3, 3),
      w = random(H, 9),
      b = random(H, 10)
    const eps = 1e-5
    const px = putF32(x, 4),
      pw = putF32(w),
      pb = putF32(b, 12),
      pr = alloc(T * H * 4),
      pl = alloc(T * H * 4, 4)
    k.rmsnorm(px, pw, pr, T, H, eps)
    k.layernorm(px, pw, pb, pl, T, H, eps)
    const rTwin = new Float32Array(T * H),
      lTwin = new Float32Array(T * H)
    rmsnorm(x, w, rTwin, T, H, eps)
    layernorm(x, w, b, lTwin, T, H, eps)
    expectSameBits(getF32(pr, T * H), rTwin, 'rmsnorm')
    expectSameBits(getF32(pl, T * H), lTwin, 'layernorm')
    for (let t = 0; t < T; t++) {
      const row = Array.from(x.subarray(t * H, (t + 1) * H))
      const ms = row.reduce((s, v) => s + v * v, 0) / H
      const mean = row.reduce((s, v) => s + v, 0) / H
      const variance = row.reduce((s, v) => s + (v - mean) ** 2, 0) / H
      const rInv = 1 / Math.sqrt(ms + Math.fround(eps)),
        lInv = 1 / Math.sqrt(variance + Math.fround(eps))
      for (let i = 0; i < H; i++) {
        const rExact = row[i] * rInv * w[i]
        expect(Math.abs(rTwin[t * H + i] - rExact)).toBeLessThanOrEqual(4e-7 * Math.abs(rExact) + 1e-35)
        const lExact = (row[i] - mean) * lInv * w[i] + b[i]
        const lBound = 5e-7 * (Math.abs(w[i]) * (Math.abs(row[i]) + Math.abs(mean)) * lInv + Math.abs(b[i]))
        expect(Math.abs(lTwin[t * H + i] - lExact)).toBeLessThanOrEqual(lBound)
      }
    }
  })

  it('works in place (out = x)', () => {
    resetHeap()
    const T = 3,
      H = 18
    const x = random(T * H, 77),
      w = random(H, 78)
    const px = putF32(x)
    k.rmsnorm(px, putF32(w), px, T, H, 1e-6)
    const twin = new Float32Array(T * H)
    rmsnorm(x, w, twin, T, H, 1e-6)
    expectSameBits(getF32(px, T * H), twin, 'rmsnorm in place')
  })
})

describe('rope_half / rope_interleaved', () => {
  const cases: [number, number, number][] = [
    [1, 1, 8],
    [3, 8, 8],
    [7, 4, 64],
    [3, 3, 6],
    [7, 2, 10],
  ]

  it.each(cases)('T=%i nHeads=%i headDim=%i match the twins bit for bit', (T, nHeads, headDim) => {
    resetHeap()
    const x = random(T * nHeads * headDim, T * 31 + headDim, 2)
    const { cos, sin } = ropeTable(T, headDim, 10000, 3)
    const pc = putF32(cos, 4),
      ps = putF32(sin)
    const ph = putF32(x, 4),
      pi = putF32(x)
    k.rope_half(ph, pc, ps, T, nHeads, headDim)
    k.rope_interleaved(pi, pc, ps, T, nHeads, headDim)
    const half = x.slice(),
      inter = x.slice()
    ropeHalf(half, cos, sin, T, nHeads, headDim)
    ropeInterleaved(inter, cos, sin, T, nHeads, headDim)
    expectSameBits(getF32(ph, x.length), half, 'rope_half')
    expectSameBits(getF32(pi, x.length), inter, 'rope_interleaved')
  })

  it('rope_interleaved on GGUF-permuted heads equals rope_half on HF heads, and rotations keep pair norms', () => {
    resetHeap()
    const T = 5,
      nHeads = 3,
      headDim = 16,
      half = headDim / 2
    const hf = random(T * nHeads * headDim, 4242)
    // GGUF's permutation of q/k rows: element i of the first half goes to 2i, of the second half to 2i + 1.
    const gguf = new Float32Array(hf.length)
    for (let r = 0; r < T * nHeads; r++) {
      for (let i = 0; i < half; i++) {
        gguf[r * headDim + 2 * i] = hf[r * headDim + i]
        gguf[r * headDim + 2 * i + 1] = hf[r * headDim + half + i]
      }
    }
    const { cos, sin } = ropeTable(T, headDim, 500000)
    const pc = putF32(cos),
      ps = putF32(sin),
      ph = putF32(hf),
      pg = putF32(gguf)
    k.rope_half(ph, pc, ps, T, nHeads, headDim)
    k.rope_interleaved(pg, pc, ps, T, nHeads, headDim)
    const outH = getF32(ph, hf.length),
      outG = getF32(pg, hf.length)
    for (let r = 0; r < T * nHeads; r++) {
      for (let i = 0; i < half; i++) {
        expect(outG[r * headDim + 2 * i]).toBe(outH[r * headDim + i])
        expect(outG[r * headDim + 2 * i + 1]).toBe(outH[r * headDim + half + i])
        const before = Math.hypot(hf[r * headDim + i], hf[r * headDim + half + i])
        const after = Math.hypot(outH[r * headDim + i], outH[r * headDim + half + i])
        expect(Math.abs(after - before)).toBeLessThanOrEqual(1e-6 * (before + 1e-6))
      }
    }
  })

  it('ropeTable matches cos/sin of pos·θ^(−2i/d) in f64 within f32 rounding, and pos0 shifts rows', () => {
    const T = 9,
      d = 64,
      theta = 10000
    const { cos, sin } = ropeTable(T, d, theta)
    for (let t = 0; t < T; t++) {
      for (let i = 0; i < d / 2; i++) {
        const angle = t * theta ** (-(2 * i) / d)
        const tol = 3e-7 * (1 + angle)
        expect(Math.abs(cos[t * 32 + i] - Math.cos(angle))).toBeLessThanOrEqual(tol)
        expect(Math.abs(sin[t * 32 + i] - Math.sin(angle))).toBeLessThanOrEqual(tol)
      }
    }
    expect(Array.from(cos.subarray(0, 32))).toEqual(new Array(32).fill(1))
    expect(Array.from(sin.subarray(0, 32))).toEqual(new Array(32).fill(0))
    const shifted = ropeTable(4, d, theta, 5)
    expectSameBits(shifted.cos, cos.slice(5 * 32, 9 * 32), 'cos with pos0 = 5')
    expectSameBits(shifted.sin, sin.slice(5 * 32, 9 * 32), 'sin with pos0 = 5')
    expect(() => ropeTable(4, d, -1)).toThrow(KernelArgumentError)
  })
})

/** Query i's scaled scores q_i·k_j / √d for j ≤ i in head h, in f64. */
function naiveScores(
  q: Float32Array,
  kk: Float32Array,
  nHeads: number,
  nKV: number,
  d: number,
  h: number,
  i: number,
): number[] {
  const g = Math.floor(h / (nHeads / nKV))
  const scores: number[] = []
  for (let j = 0; j <= i; j++) {
    let s = 0
    for (let c = 0; c < d; c++) s += q[(i * nHeads + h) * d + c] * kk[(j * nKV + g) * d + c]
    scores.push(s / Math.sqrt(d))
  }
  return scores
}

/** Naive causal attention in f64, straight from the definition. */
function naiveAttention(
  q: Float32Array,
  kk: Float32Array,
  v: Float32Array,
  T: number,
  nHeads: number,
  nKV: number,
  d: number,
): Float64Array {
  const out = new Float64Array(T * nHeads * d)
  for (let h = 0; h < nHeads; h++) {
    const g = Math.floor(h / (nHeads / nKV))
    for (let i = 0; i < T; i++) {
      const scores = naiveScores(q, kk, nHeads, nKV, d, h, i)
      const m = Math.max(...scores)
      const e = scores.map((s) => Math.exp(s - m))
      const z = e.reduce((a, c) => a + c, 0)
      for (let c = 0; c < d; c++) {
        let acc = 0
        for (let j = 0; j <= i; j++) acc += (e[j] / z) * v[(j * nKV + g) * d + c]
        out[(i * nHeads + h) * d + c] = acc
      }
    }
  }
  return out
}

describe('attention_causal', () => {
  const cases: [number, number, number, number][] = [
    [1, 8, 4, 8],
    [3, 8, 4, 8],
    [7, 8, 8, 64],
    [7, 8, 4, 64],
    [3, 4, 1, 20],
    [7, 2, 2, 6],
    [5, 8, 4, 36],
    // The kernel runs four queries at a time: T = 1, 3, 5, 17, 130 leave a short last group.
    [1, 8, 8, 8],
    [5, 8, 8, 8],
    [17, 8, 8, 8],
    [130, 8, 8, 8],
    [17, 8, 2, 8],
    [5, 8, 2, 64],
    [130, 4, 1, 64],
    [17, 2, 1, 128],
    [6, 4, 2, 40],
    [9, 3, 1, 12],
    [5, 2, 1, 4],
  ]

  it.each(cases)(
    'T=%i nHeads=%i nKV=%i headDim=%i matches the twin bit for bit and naive f64 attention',
    (T, nHeads, nKV, d) => {
      resetHeap()
      const q = random(T * nHeads * d, T * 13 + d, 2),
        kk = random(T * nKV * d, nKV * 17 + d, 2),
        v = random(T * nKV * d, 99)
      const pq = putF32(q, 4),
        pk = putF32(kk),
        pv = putF32(v, 8),
        po = alloc(q.length * 4, 4)
      // scratch gets exactly attentionScratch(T) floats, then a guard value that must survive.
      const scratchLength = attentionScratch(T)
      const pscratch = putF32(new Float32Array(scratchLength + 1).fill(12345), 4)
      k.attention_causal(pq, pk, pv, po, pscratch, T, nHeads, nKV, d, 0, nHeads)
      expect(getF32(pscratch + scratchLength * 4, 1)[0]).toBe(12345)
      const twin = new Float32Array(q.length)
      attentionCausal(q, kk, v, twin, new Float32Array(scratchLength), T, nHeads, nKV, d)
      expectSameBits(getF32(po, q.length), twin, 'attention_causal')
      const exact = naiveAttention(q, kk, v, T, nHeads, nKV, d)
      for (let i = 0; i < exact.length; i++) {
        expect(Math.abs(twin[i] - exact[i])).toBeLessThanOrEqual(2e-6 * (1 + d / 16))
      }
    },
  )

  it.each([
    [130, 8, 4, 8],
    [37, 4, 2, 64],
  ])(
    'T=%i nHeads=%i nKV=%i headDim=%i with peaked scores (terms below e^−64 dropped) matches the twin and naive f64',
    (T, nHeads, nKV, d) => {
      resetHeap()
      // Scores spread over hundreds: most terms of a row fall below e^−64 next to its largest.
      const q = random(T * nHeads * d, 5 * T + d, 60),
        kk = random(T * nKV * d, 7 * T + d, 2),
        v = random(T * nKV * d, 11)
      const exact = naiveAttention(q, kk, v, T, nHeads, nKV, d)
      let dropped = 0,
        largest = 0
      for (let h = 0; h < nHeads; h++) {
        for (let i = 0; i < T; i++) {
          const s = naiveScores(q, kk, nHeads, nKV, d, h, i)
          const m = Math.max(...s)
          dropped += s.filter((x) => (x - m) * Math.LOG2E < SOFTMAX_EXP2_MIN).length
          largest = Math.max(largest, ...s.map(Math.abs))
        }
      }
      expect(dropped).toBeGreaterThan((nHeads * T * (T + 1)) / 8)
      const po = alloc(q.length * 4, 4)
      k.attention_causal(
        putF32(q, 4),
        putF32(kk),
        putF32(v, 8),
        po,
        alloc(attentionScratch(T) * 4, 4),
        T,
        nHeads,
        nKV,
        d,
        0,
        nHeads,
      )
      const twin = new Float32Array(q.length)
      attentionCausal(q, kk, v, twin, new Float32Array(attentionScratch(T)), T, nHeads, nKV, d)
      expectSameBits(getF32(po, q.length), twin, 'attention_causal, peaked')
      // Each f32 score carries a rounding of about |s|·2⁻²⁴, which moves its weight by as much, relatively.
      const tolerance = 2e-6 * (1 + d / 16) + 4 * largest * 2 ** -24
      for (let i = 0; i < exact.length; i++) expect(Math.abs(twin[i] - exact[i])).toBeLessThanOrEqual(tolerance)
    },
  )

  it.each([8, 4])('drops a term below e^−64 to exactly 0, not e^−70 (headDim %i)', (d) => {
    resetHeap()
    // Query 1 scores key 1 at 70 and key 0 at 0; v_1 = 0, v_0 = 1: its output is key 0's weight alone.
    const q = new Float32Array(2 * d),
      kk = new Float32Array(2 * d),
      v = new Float32Array(2 * d)
    q[d] = 1
    kk[d] = Math.fround(70 * Math.sqrt(d))
    v.fill(1, 0, d)
    const po = alloc(q.length * 4)
    k.attention_causal(putF32(q), putF32(kk), putF32(v), po, alloc(attentionScratch(2) * 4), 2, 1, 1, d, 0, 1)
    const twin = new Float32Array(q.length)
    attentionCausal(q, kk, v, twin, new Float32Array(attentionScratch(2)), 2, 1, 1, d)
    expect(naiveAttention(q, kk, v, 2, 1, 1, d)[d]).toBeGreaterThan(0)
    expectSameBits(getF32(po, q.length), twin, 'attention with a dropped term')
    expect([...twin.subarray(d)]).toEqual(new Array(d).fill(0))
  })

  it("with T = 1 returns v (each query head its group's KV head), exactly", () => {
    resetHeap()
    const nHeads = 8,
      nKV = 4,
      d = 64
    const q = random(nHeads * d, 1, 5),
      kk = random(nKV * d, 2),
      v = random(nKV * d, 3)
    const po = alloc(q.length * 4)
    k.attention_causal(
      putF32(q),
      putF32(kk),
      putF32(v),
      po,
      alloc(attentionScratch(1) * 4),
      1,
      nHeads,
      nKV,
      d,
      0,
      nHeads,
    )
    const out = getF32(po, q.length)
    for (let h = 0; h < nHeads; h++) {
      expect(Array.from(out.subarray(h * d, (h + 1) * d))).toEqual(
        Array.from(v.subarray((h >> 1) * d, ((h >> 1) + 1) * d)),
      )
    }
  })

  it('head ranges computed separately (one scratch each) equal the whole', () => {
    resetHeap()
    const T = 6,
      nHeads = 8,
      nKV = 4,
      d = 16
    const q = random(T * nHeads * d, 5),
      kk = random(T * nKV * d, 6),
      v = random(T * nKV * d, 7)
    const pq = putF32(q),
      pk = putF32(kk),
      pv = putF32(v),
      po = alloc(q.length * 4)
    k.attention_causal(pq, pk, pv, po, alloc(attentionScratch(T) * 4), T, nHeads, nKV, d, 0, 3)
    k.attention_causal(pq, pk, pv, po, alloc(attentionScratch(T) * 4), T, nHeads, nKV, d, 3, 8)
    const twin = new Float32Array(q.length)
    attentionCausal(q, kk, v, twin, new Float32Array(attentionScratch(T)), T, nHeads, nKV, d)
    expectSameBits(getF32(po, q.length), twin, 'attention by head ranges')
    expect(() => attentionCausal(q, kk, v, twin, new Float32Array(attentionScratch(T)), T, 8, 3, d)).toThrow(/KV heads/)
    expect(() => attentionCausal(q, kk, v, twin, new Float32Array(attentionScratch(T) - 1), T, 8, 4, d)).toThrow(
      /scratch/,
    )
  })

  it.each([
    [17, 8, 2, 8],
    [130, 8, 8, 8],
    [13, 8, 4, 64],
  ])(
    'T=%i nHeads=%i nKV=%i headDim=%i: head ranges that split KV groups, each with its own scratch, match the twin',
    (T, nHeads, nKV, d) => {
      resetHeap()
      const q = random(T * nHeads * d, 21, 3),
        kk = random(T * nKV * d, 22, 3),
        v = random(T * nKV * d, 23)
      const pq = putF32(q),
        pk = putF32(kk),
        pv = putF32(v),
        po = putF32(new Float32Array(q.length).fill(777))
      // Ranges of 1, 2 and the rest cut through the KV groups; the output outside [h0, h1) must stay untouched.
      const cuts = [0, 1, 3, nHeads]
      for (let c = 0; c + 1 < cuts.length; c++) {
        k.attention_causal(pq, pk, pv, po, alloc(attentionScratch(T) * 4), T, nHeads, nKV, d, cuts[c], cuts[c + 1])
        const got = getF32(po, q.length)
        for (let i = 0; i < T; i++) expect(got[(i * nHeads + cuts[c + 1] - 1) * d]).not.toBe(777)
        if (cuts[c + 1] < nHeads) expect(got[cuts[c + 1] * d]).toBe(777)
      }
      const twin = new Float32Array(q.length)
      attentionCausal(q, kk, v, twin, new Float32Array(attentionScratch(T)), T, nHeads, nKV, d)
      expectSameBits(getF32(po, q.length), twin, 'attention by head ranges')
    },
  )

  it.each([5, 9, 10])(
    'an infinite v row %i reaches exactly the queries at or after it (masked lanes of a query group add nothing)',
    (infRow) => {
      resetHeap()
      // T = 11 gives query groups 0–3, 4–7 and 8–10, so rows 5, 9 and 10 are keys some query of their group
      // must not take: a masked lane that added 0·v would turn that query NaN. Large scores make many p_j
      // exactly 0 and others exactly 1, and v holds signed zeros.
      const T = 11,
        nHeads = 4,
        nKV = 2,
        d = 8,
        qRow = nHeads * d
      const q = random(T * qRow, 31, 40),
        kk = random(T * nKV * d, 32, 40),
        v = random(T * nKV * d, 33)
      for (let i = 0; i < v.length; i += 3) v[i] = i % 2 ? -0 : 0
      v.fill(Infinity, infRow * nKV * d, (infRow + 1) * nKV * d)
      const { got, twin } = attentionBothWays(q, kk, v, T, nHeads, nKV, d)
      expectSameBits(got, twin, 'attention with an infinite v row')
      for (let i = 0; i < T; i++) {
        const finite = got.subarray(i * qRow, (i + 1) * qRow).every(Number.isFinite)
        expect(finite, `query ${i}`).toBe(i < infRow)
      }
    },
  )

  it("keys whose scores are signed zeros give the twin's bits (headDim 8 skips dot()'s 0 + a)", () => {
    // Every other key row is ±0 and q holds −0s and negatives, so those scores are sums of −0 and +0 products:
    // the kernel's lane sums may carry the other zero, which must not reach an output.
    const T = 13,
      nHeads = 4,
      nKV = 2,
      d = 8
    const q = random(T * nHeads * d, 41, 3),
      kk = random(T * nKV * d, 42, 3),
      v = random(T * nKV * d, 43)
    for (let i = 0; i < q.length; i += 2) q[i] = -0
    for (let row = 0; row < T; row += 2) for (let c = 0; c < nKV * d; c++) kk[row * nKV * d + c] = c % 3 ? -0 : 0
    const { got, twin } = attentionBothWays(q, kk, v, T, nHeads, nKV, d)
    expectSameBits(got, twin, 'attention with zero scores')
  })

  it('the bitwise comparison sees a change of summation order (so the cases above pin the order)', () => {
    // The spec written out for headDim 8, with acc summed either from j = 0 (the spec) or from j = i down:
    // the first must equal the twin bit for bit and the second must not, so an order change cannot pass.
    const T = 130,
      nHeads = 2,
      d = 8,
      row = nHeads * d
    const q = random(T * row, 41, 2),
      kk = random(T * row, 42, 2),
      v = random(T * row, 43)
    const twin = new Float32Array(q.length)
    attentionCausal(q, kk, v, twin, new Float32Array(attentionScratch(T)), T, nHeads, nHeads, d)
    const scale = Math.fround(Math.LOG2E / Math.sqrt(d))
    const spec = (reverse: boolean): Float32Array => {
      const out = new Float32Array(q.length)
      for (let h = 0; h < nHeads; h++) {
        for (let i = 0; i < T; i++) {
          const qi = i * row + h * d
          const s = Array.from({ length: i + 1 }, (_, j) => {
            const kj = j * row + h * d
            // four lane sums over d = c and c + 4, combined (l0 + l1) + (l2 + l3)
            const l = [0, 1, 2, 3].map((c) =>
              Math.fround(
                Math.fround(0 + Math.fround(q[qi + c] * kk[kj + c])) + Math.fround(q[qi + c + 4] * kk[kj + c + 4]),
              ),
            )
            return Math.fround(Math.fround(Math.fround(l[0] + l[1]) + Math.fround(l[2] + l[3])) * scale)
          })
          const m = s.reduce((a, b) => (b > a ? b : a), -Infinity)
          const p = s.map((x) => softmaxExp2F32(Math.fround(x - m)))
          const inv = Math.fround(1 / p.reduce((a, b) => a + b, 0))
          for (let c = 0; c < d; c++) {
            let acc = 0
            for (let t = 0; t <= i; t++) {
              const j = reverse ? i - t : t
              acc = Math.fround(acc + Math.fround(p[j] * v[j * row + h * d + c]))
            }
            out[qi + c] = Math.fround(acc * inv)
          }
        }
      }
      return out
    }
    expectSameBits(spec(false), twin, 'the spec, in order')
    expect(() => expectSameBits(spec(true), twin, 'the spec, acc reversed')).toThrow(/twin says/)
  })
})

describe('activations and adds', () => {
  // Ordinary values, then the edges: zeros of both signs, tiny, huge, infinities, NaN.
  const special = [
    0,
    -0,
    1e-30,
    -1e-30,
    1e-3,
    -1e-3,
    0.5,
    -0.5,
    3,
    -3,
    9,
    -9,
    20,
    -20,
    60,
    -60,
    100,
    -100,
    3e38,
    -3e38,
    Infinity,
    -Infinity,
    NaN,
  ]
  const inputs = new Float32Array([...special, ...random(1023, 55, 8)])
  const n = inputs.length

  it('silu_mul, gelu_tanh, gelu_erf and relu match their twins bit for bit (also in place)', () => {
    resetHeap()
    const u = random(n, 56, 2)
    const px = putF32(inputs, 4),
      pu = putF32(u),
      po = alloc(n * 4, 8)
    // Length n runs the specials through the SIMD lanes; length 23 sends the last three (±Infinity,
    // NaN) through the scalar tail.
    for (const len of [n, special.length]) {
      const check = (name: string, run: () => void, twin: (out: Float32Array) => void): void => {
        run()
        const expected = new Float32Array(len)
        twin(expected)
        expectSameBits(getF32(po, len), expected, `${name} (n = ${len})`)
      }
      check(
        'silu_mul',
        () => k.silu_mul(px, pu, po, len),
        (o) => siluMul(inputs, u, o, len),
      )
      check(
        'gelu_tanh',
        () => k.gelu_tanh(px, po, len),
        (o) => geluTanh(inputs, o, len),
      )
      check(
        'gelu_erf',
        () => k.gelu_erf(px, po, len),
        (o) => geluErf(inputs, o, len),
      )
      check(
        'relu',
        () => k.relu(px, po, len),
        (o) => relu(inputs, o, len),
      )
    }
    const pg = putF32(inputs)
    k.silu_mul(pg, pu, pg, n) // the forward pass writes SwiGLU over the gate
    const twin = new Float32Array(n)
    siluMul(inputs, u, twin, n)
    expectSameBits(getF32(pg, n), twin, 'silu_mul in place')
  })

  it('agree with the textbook formulas in f64', () => {
    const u = random(n, 56, 2)
    const silu = new Float32Array(n),
      gt = new Float32Array(n),
      ge = new Float32Array(n),
      re = new Float32Array(n)
    siluMul(inputs, u, silu, n)
    geluTanh(inputs, gt, n)
    geluErf(inputs, ge, n)
    relu(inputs, re, n)
    for (let i = 0; i < n; i++) {
      const x = inputs[i]
      if (!Number.isFinite(x)) continue
      // f32 arithmetic: a few roundings of 2⁻²⁴ each, plus expF32's ≤ 2 ulp.
      const siluRef = (x / (1 + Math.exp(-x))) * u[i]
      expect(Math.abs(silu[i] - siluRef)).toBeLessThanOrEqual(8 * 2 ** -24 * Math.abs(siluRef) + 1e-40)
      // gelu_tanh also rounds its exponent z, which costs |z|·(relative error of z) in e^(−z).
      const z = 2 * Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)
      const tanhRef = 0.5 * x * (1 + Math.tanh(z / 2))
      const tanhTol = (8 + 4 * Math.abs(z)) * 2 ** -24 * Math.abs(tanhRef) + 1e-15 * Math.abs(x) + 1e-40
      expect(Math.abs(gt[i] - tanhRef)).toBeLessThanOrEqual(tanhTol)
      expect(re[i]).toBe(x > 0 ? x : 0)
    }
    // Exact GELU at points computed with CPython's math.erfc: 0.5·x·erfc(−x/√2).
    const geluRef: [number, number][] = [
      [-10, -7.619853024160593e-23],
      [-6, -5.919525870226207e-9],
      [-4, -0.00012668496733247986],
      [-3, -0.004049694094890287],
      [-1, -0.15865525393145707],
      [-0.5, -0.15426876936299344],
      [0.25, 0.14967658142073093],
      [1, 0.8413447460685429],
      [1.5, 1.399789198096713],
      [3, 2.99595030590511],
      [5, 4.99999856674214],
    ]
    const xs = new Float32Array(geluRef.map(([x]) => x)),
      out = new Float32Array(xs.length)
    geluErf(xs, out, xs.length)
    geluRef.forEach(([, ref], i) => expect(Math.abs(out[i] - ref)).toBeLessThanOrEqual(6e-8 * Math.abs(ref)))
    const erfcRef: [number, number][] = [
      [-3, 1.9999779095030015],
      [-0.3, 1.3286267594591274],
      [0.3, 0.6713732405408726],
      [1, 0.15729920705028513],
      [1.9, 0.0072095707647425325],
      [2, 0.004677734981047265],
      [2.5, 0.0004069520174449589],
      [4, 1.541725790028002e-8],
      [6, 2.1519736712498916e-17],
      [10, 2.088487583762545e-45],
    ]
    for (const [z, ref] of erfcRef) expect(Math.abs(erfc64(z) - ref)).toBeLessThanOrEqual(1e-12 * ref)
  })

  it('add_inplace and add_bias_rows match the twins and plain f32 sums', () => {
    resetHeap()
    const T = 7,
      N = 13
    const a = random(T * N, 60),
      b = random(T * N, 61),
      bias = random(N, 62)
    const pa = putF32(a, 4),
      pb = putF32(b)
    k.add_inplace(pa, pb, T * N)
    k.add_bias_rows(pa, putF32(bias, 12), T, N)
    const twin = a.slice()
    addInplace(twin, b, T * N)
    addBiasRows(twin, bias, T, N)
    expectSameBits(getF32(pa, T * N), twin, 'adds')
    for (let i = 0; i < T * N; i++) expect(twin[i]).toBe(Math.fround(Math.fround(a[i] + b[i]) + bias[i % N]))
  })
})

describe('log_softmax_nll', () => {
  // The spec's bound on S's relative error (kernels/assembly/softmax.ts): 2^−22 + ln(V)·2^−23, plus f64's.
  it.each([
    [1, 1, 1],
    [3, 5, 1],
    [7, 101, 1],
    [3, 5003, 1],
    [5, 515, 40], // spread ±40: terms far below 2^−92 of the largest are dropped
  ])('T=%i V=%i (logits × %i) matches the twin bit for bit and a naive f64 NLL', (T, V, spread) => {
    resetHeap()
    const logits = random(T * V, T * V + 12, spread)
    const targets = Int32Array.from({ length: T }, (_, t) => (t * 7919) % V)
    if (T > 2) targets[1] = -100 // "no target"
    const pl = putF32(logits, 4)
    const pt = alloc(T * 4)
    new Int32Array(memory.buffer, pt, T).set(targets)
    const pn = alloc(T * 8)
    k.log_softmax_nll(pl, pt, pn, T, V)
    const got = new Float64Array(memory.buffer, pn, T).slice()
    const twin = new Float64Array(T)
    logSoftmaxNll(logits, targets, twin, T, V)
    expectSameBits(got, twin, 'log_softmax_nll')
    for (let t = 0; t < T; t++) {
      if (targets[t] < 0) {
        expect(twin[t]).toBe(0)
        continue
      }
      const row = Array.from(logits.subarray(t * V, (t + 1) * V))
      const m = Math.max(...row)
      const lse = m + Math.log(row.reduce((s, l) => s + Math.exp(l - m), 0))
      const exact = lse - row[targets[t]]
      const bound = 2 ** -22 + Math.log(V) * 2 ** -23 + 1e-13 * (Math.abs(lse) + 1)
      expect(Math.abs(twin[t] - exact)).toBeLessThanOrEqual(bound)
    }
  })

  it('a target past the vocabulary gives NaN, not a read out of the row', () => {
    const nll = new Float64Array(1)
    logSoftmaxNll(new Float32Array([1, 2]), new Int32Array([2]), nll, 1, 2)
    expect(nll[0]).toBeNaN()
    expect(() => logSoftmaxNll(new Float32Array(3), new Int32Array(1), nll, 1, 4)).toThrow(/logits holds 3/)
  })

  it('expF32 (attention, silu, gelu_tanh) is within 2 ulp of e^x and saturates exactly', () => {
    let worstUlps = 0
    for (let x = -87; x <= 88.7; x += 0.0137) {
      const xf = Math.fround(x),
        e = Math.exp(xf)
      const ulp = 2 ** (Math.floor(Math.log2(e)) - 23)
      worstUlps = Math.max(worstUlps, Math.abs(expF32(xf) - e) / ulp)
    }
    expect(worstUlps).toBeLessThanOrEqual(2)
    expect(expF32(0)).toBe(1)
    expect(expF32(89)).toBe(Infinity)
    expect(expF32(1e30)).toBe(Infinity)
    expect(expF32(-104)).toBe(0)
    expect(expF32(-Infinity)).toBe(0)
    expect(expF32(NaN)).toBeNaN()
    // Subnormal results are rounded, not flushed: e^−100 ≈ 3.72e-44 = 26.5 × 2⁻¹⁴⁹.
    expect(expF32(-100) / 2 ** -149).toBeCloseTo(Math.exp(-100) / 2 ** -149, 0)
  })

  it('softmaxExp2F32 (attention) is within 1.5 ulp of 2^x, exact at whole x, 0 below −92; the kernel gives its bits', () => {
    expect(k.softmax_exp2_min()).toBe(SOFTMAX_EXP2_MIN)
    let worstUlps = 0
    for (let x = SOFTMAX_EXP2_MIN; x <= 127; x += 0.00731) {
      const xf = Math.fround(x),
        e = 2 ** xf
      const ulp = 2 ** (Math.floor(Math.log2(e)) - 23)
      worstUlps = Math.max(worstUlps, Math.abs(softmaxExp2F32(xf) - e) / ulp)
    }
    expect(worstUlps).toBeLessThanOrEqual(1.5)
    for (const n of [0, -1, -37, -92, 5, 127]) expect(softmaxExp2F32(n)).toBe(2 ** n)
    expect(softmaxExp2F32(1000)).toBe(2 ** 127 * softmaxExp2F32(0))
    // The next f32 below the bound, and far below it: dropped.
    const below = Math.fround(SOFTMAX_EXP2_MIN * (1 + 2 ** -23))
    expect(below).toBeLessThan(SOFTMAX_EXP2_MIN)
    expect(softmaxExp2F32(below)).toBe(0)
    expect(softmaxExp2F32(-150)).toBe(0)
    expect(softmaxExp2F32(-Infinity)).toBe(0)
    expect(softmaxExp2F32(NaN)).toBeNaN()
    // The kernel, SIMD lanes and scalar tail, on a sweep plus the edges: halves (ties round to even),
    // the bound and its neighbour, the clamp, infinities and NaN.
    resetHeap()
    const edges = [-0.5, 0.5, 1.5, 2.5, -2.5, -91.5, -92, below, 126.5, 127, 200, Infinity, -Infinity, NaN, 0, -0]
    const xs = new Float32Array(4003)
    xs.set(edges)
    for (let i = edges.length; i < xs.length; i++) xs[i] = -100 + ((i * 0.0573) % 240)
    const px = putF32(xs),
      po = alloc(xs.length * 4)
    k.softmax_exp2(px, po, xs.length)
    expectSameBits(getF32(po, xs.length), Float32Array.from(xs, softmaxExp2F32), 'softmax_exp2')
  })

  it('exp64 and log64 (log_softmax_nll, gelu_erf) are within 2 ulp of Math', () => {
    const worst = { exp: 0, log: 0 }
    for (let x = -708; x <= 709; x += 0.731) {
      const e = Math.exp(x)
      worst.exp = Math.max(worst.exp, Math.abs(exp64(x) - e) / e)
    }
    for (const x of [5e-324, 1e-310, 1e-300, 1e-5, 0.7, 1, 1 + 1e-15, 1.5, 2, 1e5, 1e300, 1.7e308]) {
      worst.log = Math.max(worst.log, Math.abs(log64(x) - Math.log(x)) / Math.max(1e-300, Math.abs(Math.log(x))))
    }
    expect(worst.exp).toBeLessThanOrEqual(4.5e-16)
    expect(worst.log).toBeLessThanOrEqual(4.5e-16)
    expect(exp64(0)).toBe(1)
    expect(exp64(800)).toBe(Infinity)
    expect(exp64(-800)).toBe(0)
    expect(exp64(709.78)).toBeLessThan(Infinity)
    expect(Math.abs(exp64(709.78) / Math.exp(709.78) - 1)).toBeLessThan(1e-15)
    // Subnormal results round once: within one subnormal step (2⁻¹⁰⁷⁴) of Math.exp.
    for (const x of [-709, -720, -740, -745]) expect(Math.abs(exp64(x) - Math.exp(x))).toBeLessThanOrEqual(2 ** -1074)
    expect(log64(0)).toBe(-Infinity)
    expect(log64(-1)).toBeNaN()
  })
})
