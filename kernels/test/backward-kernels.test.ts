// The backward-pass kernels (kernels/assembly/backward-*.ts) against their TS twins, bit for bit, and the
// twins against central finite differences of independent f64 forward functions written here, on tiny
// shapes. The twins round to f32, so the finite-difference checks hold them to 1e-4 relative (the f64
// differences themselves are good to ~1e-9). Needs the kernel build: `npm run build:kernels`.

import { beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { matmulNN, matmulTNAcc, TN_CHUNK } from '../reference/backward-linear'
import { rmsnormBackward } from '../reference/backward-norm'
import { ropeHalfBackward, ropeInterleavedBackward } from '../reference/backward-rope'
import { attentionBackwardScratch, attentionCausalBackward } from '../reference/backward-attention'
import { siluMulBackward } from '../reference/backward-activation'
import { distillLoss } from '../reference/backward-loss'
import { ropeTable } from '../reference/rope'
import {
  firstBitDifference,
  loadKernels,
  normalish,
  rng,
  withSpecials,
  type KernelHarness,
} from '../testing/kernel-harness'

let h: KernelHarness

beforeAll(async () => {
  h = await loadKernels()
  if (typeof (h.k as unknown as Record<string, unknown>).distill_loss !== 'function') {
    throw new Error('kernels.wasm lacks the backward kernels: run npm run build:kernels')
  }
})
beforeEach(() => h.reset())

function expectSameBits(actual: Float32Array | Float64Array, twin: Float32Array | Float64Array, what: string): void {
  const i = firstBitDifference(actual, twin)
  if (i >= 0) throw new Error(`${what}: element ${i} is ${actual[i]}, twin says ${twin[i]}`)
}

/** Largest |a − b| over the largest |b| (a relative error for the vector as a whole). */
function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0,
    den = 0
  for (let i = 0; i < b.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]))
    den = Math.max(den, Math.abs(b[i]))
  }
  return num / Math.max(den, 1e-30)
}

/** Central differences of a scalar f64 function of x (x is perturbed in place and restored). */
function numericGrad(x: Float64Array, loss: () => number, step = 1e-5): Float64Array {
  const g = new Float64Array(x.length)
  for (let i = 0; i < x.length; i++) {
    const keep = x[i]
    x[i] = keep + step
    const up = loss()
    x[i] = keep - step
    const down = loss()
    x[i] = keep
    g[i] = (up - down) / (2 * step)
  }
  return g
}

const f64 = (a: ArrayLike<number>): Float64Array => Float64Array.from(a)

describe('linear backward: matmul_nn (dX = dY·W) and matmul_tn_acc (dW += dYᵀ·X)', () => {
  const shapes = [
    [1, 1, 1],
    [3, 5, 7],
    [5, 17, 9],
    [9, 33, 13],
    [4, 64, 8],
    [7, 3, 21],
  ]
  it('matmul_nn equals its twin bit for bit, written or accumulated, split into column ranges', () => {
    const r = rng(1)
    for (const [T, N, K] of shapes) {
      for (const acc of [0, 1]) {
        const x = withSpecials(normalish(r, T * N), r, 40),
          w = normalish(r, N * K),
          y0 = normalish(r, T * K)
        const px = h.put(x, 4),
          pw = h.put(w, 8),
          py = h.put(y0)
        const mid = Math.floor(K / 2)
        h.k.matmul_nn(px, pw, py, T, N, K, 0, mid, acc)
        h.k.matmul_nn(px, pw, py, T, N, K, mid, K, acc)
        const twin = y0.slice()
        matmulNN(x, w, twin, T, N, K, 0, K, acc === 1)
        expectSameBits(h.f32(py, T * K), twin, `matmul_nn ${T}×${N}×${K} acc=${acc}`)
      }
    }
  })

  it('matmul_tn_acc equals its twin bit for bit across token chunks, split into row ranges', () => {
    const r = rng(2)
    for (const [M, N, K] of [...shapes, [TN_CHUNK + 45, 6, 10]]) {
      const dy = normalish(r, M * N),
        x = withSpecials(normalish(r, M * K), r, 60),
        dw0 = normalish(r, N * K)
      const pdy = h.put(dy),
        px = h.put(x, 12),
        pdw = h.put(dw0)
      const mid = Math.floor(N / 2)
      h.k.matmul_tn_acc(pdy, px, pdw, M, N, K, mid, N)
      h.k.matmul_tn_acc(pdy, px, pdw, M, N, K, 0, mid)
      const twin = dw0.slice()
      matmulTNAcc(dy, x, twin, M, N, K)
      expectSameBits(h.f32(pdw, N * K), twin, `matmul_tn_acc ${M}×${N}×${K}`)
    }
  })

  it('the twins are the gradients of y = x·Wᵀ (f64 sums, 1e-5 relative)', () => {
    const r = rng(3)
    const M = 300,
      N = 7,
      K = 11
    const x = normalish(r, M * K),
      w = normalish(r, N * K),
      dy = normalish(r, M * N)
    const dx = new Float32Array(M * K),
      dw = new Float32Array(N * K)
    matmulNN(dy, w, dx, M, N, K)
    matmulTNAcc(dy, x, dw, M, N, K)
    // L = Σ dy ⊙ (x·Wᵀ): ∂L/∂x[t,k] = Σ_n dy[t,n] w[n,k], ∂L/∂w[n,k] = Σ_t dy[t,n] x[t,k].
    const ex = new Float64Array(M * K),
      ew = new Float64Array(N * K)
    for (let t = 0; t < M; t++)
      for (let n = 0; n < N; n++)
        for (let k = 0; k < K; k++) {
          ex[t * K + k] += dy[t * N + n] * w[n * K + k]
          ew[n * K + k] += dy[t * N + n] * x[t * K + k]
        }
    expect(relErr(dx, ex)).toBeLessThan(1e-5)
    expect(relErr(dw, ew)).toBeLessThan(1e-5)
  })
})

describe('rmsnorm_backward', () => {
  it('equals its twin bit for bit (accumulating into dx)', () => {
    const r = rng(4)
    for (const H of [1, 3, 5, 8, 17, 64]) {
      const T = 3
      const x = normalish(r, T * H),
        w = normalish(r, H, 0.5, 1),
        dy = normalish(r, T * H),
        dx0 = normalish(r, T * H)
      const pdx = h.put(dx0)
      h.k.rmsnorm_backward(h.put(x), h.put(w, 4), h.put(dy), pdx, T, H, 1e-5)
      const twin = dx0.slice()
      rmsnormBackward(x, w, dy, twin, T, H, 1e-5)
      expectSameBits(h.f32(pdx, T * H), twin, `rmsnorm_backward H=${H}`)
    }
  })

  it('matches finite differences of an f64 RMSNorm', () => {
    const r = rng(5)
    const T = 2,
      H = 13,
      eps = 1e-5
    const x = normalish(r, T * H),
      w = normalish(r, H, 0.5, 1),
      dy = normalish(r, T * H)
    const dx = new Float32Array(T * H)
    rmsnormBackward(x, w, dy, dx, T, H, eps)
    const xd = f64(x)
    const loss = (): number => {
      let L = 0
      for (let t = 0; t < T; t++) {
        let ss = 0
        for (let k = 0; k < H; k++) ss += xd[t * H + k] ** 2
        const rr = 1 / Math.sqrt(ss / H + Math.fround(eps))
        for (let k = 0; k < H; k++) L += xd[t * H + k] * rr * w[k] * dy[t * H + k]
      }
      return L
    }
    expect(relErr(dx, numericGrad(xd, loss))).toBeLessThan(1e-4)
  })
})

describe('rope backward', () => {
  for (const [name, kernel, twin, interleaved] of [
    ['rope_half_backward', 'rope_half_backward', ropeHalfBackward, false],
    ['rope_interleaved_backward', 'rope_interleaved_backward', ropeInterleavedBackward, true],
  ] as const) {
    it(`${name} equals its twin bit for bit and is the transpose of the rotation`, () => {
      const r = rng(6)
      for (const [T, nH, hd] of [
        [1, 1, 2],
        [3, 2, 8],
        [5, 3, 12],
        [4, 2, 64],
      ]) {
        const table = ropeTable(T, hd, 10000)
        const g = withSpecials(normalish(r, T * nH * hd), r, 50)
        const pg = h.put(g)
        h.k[kernel](pg, h.put(table.cos), h.put(table.sin), T, nH, hd)
        const t = g.slice()
        twin(t, table.cos, table.sin, T, nH, hd)
        expectSameBits(h.f32(pg, g.length), t, `${name} ${T}×${nH}×${hd}`)
      }
      // Rotation R: y = R x, L = Σ g·y, ∂L/∂x = Rᵀ g; finite differences of an f64 rotation.
      const T = 3,
        nH = 2,
        hd = 6
      const table = ropeTable(T, hd, 10000)
      const g = normalish(r, T * nH * hd)
      const back = g.slice()
      twin(back, table.cos, table.sin, T, nH, hd)
      const xd = f64(normalish(r, T * nH * hd))
      const half = hd / 2
      const loss = (): number => {
        let L = 0
        for (let t = 0; t < T; t++)
          for (let hh = 0; hh < nH; hh++)
            for (let i = 0; i < half; i++) {
              const base = (t * nH + hh) * hd
              const ia = interleaved ? base + 2 * i : base + i,
                ib = interleaved ? ia + 1 : ia + half
              const c = table.cos[t * half + i],
                s = table.sin[t * half + i]
              L += g[ia] * (xd[ia] * c - xd[ib] * s) + g[ib] * (xd[ia] * s + xd[ib] * c)
            }
        return L
      }
      expect(relErr(back, numericGrad(xd, loss))).toBeLessThan(1e-5)
    })
  }
})

/** f64 causal attention with GQA: out[T, nH·hd]. */
function attentionF64(
  q: Float64Array,
  k: Float64Array,
  v: Float64Array,
  T: number,
  nH: number,
  nKV: number,
  hd: number,
): Float64Array {
  const out = new Float64Array(T * nH * hd)
  const group = nH / nKV
  for (let hh = 0; hh < nH; hh++) {
    const kv = Math.floor(hh / group) * hd
    for (let i = 0; i < T; i++) {
      const s: number[] = []
      for (let j = 0; j <= i; j++) {
        let d = 0
        for (let e = 0; e < hd; e++) d += q[i * nH * hd + hh * hd + e] * k[j * nKV * hd + kv + e]
        s.push(d / Math.sqrt(hd))
      }
      const m = Math.max(...s)
      const p = s.map((x) => Math.exp(x - m))
      const S = p.reduce((a, b) => a + b, 0)
      for (let e = 0; e < hd; e++) {
        let acc = 0
        for (let j = 0; j <= i; j++) acc += (p[j] / S) * v[j * nKV * hd + kv + e]
        out[i * nH * hd + hh * hd + e] = acc
      }
    }
  }
  return out
}

describe('attention_causal_backward', () => {
  const shapes = [
    [1, 1, 1, 4],
    [5, 4, 2, 8],
    [7, 3, 1, 5],
    [17, 2, 2, 4],
    [9, 6, 3, 12],
    [150, 2, 1, 8],
    [131, 2, 2, 6],
    // Peaked: q scaled by 40 spreads each row's scores past the softmax's e^−64 bound.
    [67, 4, 2, 8, 40],
  ]
  it('equals its twin bit for bit when split by KV heads', () => {
    const r = rng(7)
    for (const [T, nH, nKV, hd, qScale = 1] of shapes) {
      const qn = T * nH * hd,
        kn = T * nKV * hd
      const q = normalish(r, qn).map((x) => x * qScale),
        k = normalish(r, kn),
        v = normalish(r, kn),
        dout = normalish(r, qn)
      const pq = h.put(q),
        pk = h.put(k),
        pv = h.put(v),
        pdo = h.put(dout)
      const pdq = h.alloc(qn * 4),
        pdk = h.put(new Float32Array(kn)),
        pdv = h.put(new Float32Array(kn))
      const scratch = h.alloc(4 * attentionBackwardScratch(T))
      for (let g = 0; g < nKV; g++)
        h.k.attention_causal_backward(pq, pk, pv, pdo, pdq, pdk, pdv, scratch, T, nH, nKV, hd, g, g + 1)
      const dq = new Float32Array(qn),
        dk = new Float32Array(kn),
        dv = new Float32Array(kn)
      attentionCausalBackward(q, k, v, dout, dq, dk, dv, new Float32Array(2 * T), T, nH, nKV, hd)
      expectSameBits(h.f32(pdq, qn), dq, `dq ${T}×${nH}/${nKV}×${hd}`)
      expectSameBits(h.f32(pdk, kn), dk, `dk ${T}×${nH}/${nKV}×${hd}`)
      expectSameBits(h.f32(pdv, kn), dv, `dv ${T}×${nH}/${nKV}×${hd}`)
    }
  })

  it('drops the forward softmax terms below e^−64 to exactly 0, as the forward does', () => {
    // Query 1 scores key 1 at 70 and key 0 at 0, so key 0's weight for it is dropped: dv_0 then holds only
    // query 0's p·dout_0, which is 0, where e^−70·dout_1 would be ≈ 4e-31.
    const T = 2,
      hd = 8
    const q = new Float32Array(T * hd),
      k = new Float32Array(T * hd),
      v = new Float32Array(T * hd),
      dout = new Float32Array(T * hd)
    q[hd] = 1
    k[hd] = Math.fround(70 * Math.sqrt(hd))
    dout.fill(1, hd)
    const pdq = h.alloc(T * hd * 4),
      pdk = h.put(new Float32Array(T * hd)),
      pdv = h.put(new Float32Array(T * hd))
    const scratch = h.alloc(4 * attentionBackwardScratch(T))
    h.k.attention_causal_backward(h.put(q), h.put(k), h.put(v), h.put(dout), pdq, pdk, pdv, scratch, T, 1, 1, hd, 0, 1)
    const dq = new Float32Array(T * hd),
      dk = new Float32Array(T * hd),
      dv = new Float32Array(T * hd)
    attentionCausalBackward(q, k, v, dout, dq, dk, dv, new Float32Array(2 * T), T, 1, 1, hd)
    expectSameBits(h.f32(pdv, T * hd), dv, 'dv with a dropped term')
    expect([...dv.subarray(0, hd)]).toEqual(new Array(hd).fill(0))
    expect([...dv.subarray(hd)]).toEqual(new Array(hd).fill(1))
  })

  it('matches finite differences of an f64 attention with grouped KV heads', () => {
    const r = rng(8)
    const T = 6,
      nH = 4,
      nKV = 2,
      hd = 4
    const q = normalish(r, T * nH * hd),
      k = normalish(r, T * nKV * hd),
      v = normalish(r, T * nKV * hd)
    const dout = normalish(r, T * nH * hd)
    const dq = new Float32Array(q.length),
      dk = new Float32Array(k.length),
      dv = new Float32Array(v.length)
    attentionCausalBackward(q, k, v, dout, dq, dk, dv, new Float32Array(2 * T), T, nH, nKV, hd)
    const qd = f64(q),
      kd = f64(k),
      vd = f64(v)
    const loss = (): number => attentionF64(qd, kd, vd, T, nH, nKV, hd).reduce((s, y, i) => s + y * dout[i], 0)
    expect(relErr(dq, numericGrad(qd, loss))).toBeLessThan(1e-4)
    expect(relErr(dk, numericGrad(kd, loss))).toBeLessThan(1e-4)
    expect(relErr(dv, numericGrad(vd, loss))).toBeLessThan(1e-4)
  })
})

describe('silu_mul_backward', () => {
  it('equals its twin bit for bit, special values included', () => {
    const r = rng(9)
    for (const n of [1, 3, 4, 17, 4099]) {
      const g = withSpecials(normalish(r, n, 4), r, 9),
        u = withSpecials(normalish(r, n), r, 9),
        d = normalish(r, n)
      const pdg = h.alloc(n * 4),
        pdu = h.alloc(n * 4, 4)
      h.k.silu_mul_backward(h.put(g), h.put(u), h.put(d), pdg, pdu, n)
      const dg = new Float32Array(n),
        du = new Float32Array(n)
      siluMulBackward(g, u, d, dg, du, n)
      expectSameBits(h.f32(pdg, n), dg, `dg n=${n}`)
      expectSameBits(h.f32(pdu, n), du, `du n=${n}`)
    }
  })

  it('matches finite differences of silu(g)·u', () => {
    const r = rng(10)
    const n = 37
    const g = normalish(r, n, 3),
      u = normalish(r, n),
      d = normalish(r, n)
    const dg = new Float32Array(n),
      du = new Float32Array(n)
    siluMulBackward(g, u, d, dg, du, n)
    const gd = f64(g),
      ud = f64(u)
    const loss = (): number => gd.reduce((s, x, i) => s + (x / (1 + Math.exp(-x))) * ud[i] * d[i], 0)
    expect(relErr(dg, numericGrad(gd, loss))).toBeLessThan(1e-4)
    expect(relErr(du, numericGrad(ud, loss))).toBeLessThan(1e-4)
  })
})

/** f64 α·T²·KL(teacher_T ‖ student_T) + (1 − α)·CE, summed over rows with a target ≥ 0, times scale. */
function distillF64(
  z: Float64Array,
  zt: Float32Array,
  y: Int32Array,
  R: number,
  V: number,
  temp: number,
  alpha: number,
  scale: number,
): { loss: number; ce: number[]; kl: number[] } {
  const ce: number[] = [],
    kl: number[] = []
  let loss = 0
  const logSoftmax = (row: ArrayLike<number>, off: number, div: number): number[] => {
    const a = Array.from({ length: V }, (_, v) => row[off + v] / div)
    const m = Math.max(...a)
    const lse = m + Math.log(a.reduce((s, x) => s + Math.exp(x - m), 0))
    return a.map((x) => x - lse)
  }
  for (let t = 0; t < R; t++) {
    if (y[t] < 0) {
      ce.push(0)
      kl.push(0)
      continue
    }
    const ls = logSoftmax(z, t * V, 1),
      lsT = logSoftmax(z, t * V, temp),
      ltT = logSoftmax(zt, t * V, temp)
    const c = -ls[y[t]]
    const k = alpha === 0 ? 0 : ltT.reduce((s, l, v) => s + Math.exp(l) * (l - lsT[v]), 0)
    ce.push(c)
    kl.push(k)
    loss += scale * (alpha * temp * temp * k + (1 - alpha) * c)
  }
  return { loss, ce, kl }
}

describe('distill_loss (cross-entropy + temperature KL)', () => {
  const cases = [
    { R: 3, V: 5, temp: 2, alpha: 0.5 },
    { R: 4, V: 17, temp: 2, alpha: 0.5 },
    { R: 5, V: 64, temp: 1.5, alpha: 0.25 },
    { R: 3, V: 33, temp: 2, alpha: 0 },
  ]
  it('equals its twin bit for bit (ignored and out-of-range targets included)', () => {
    const r = rng(11)
    for (const { R, V, temp, alpha } of cases) {
      const z = normalish(r, R * V, 3),
        zt = normalish(r, R * V, 3)
      const y = Int32Array.from({ length: R }, (_, t) => (t === 1 ? -1 : t === 2 ? V : Math.floor(r() * V)))
      const pdz = h.alloc(R * V * 4),
        pst = h.alloc(R * 16)
      h.k.distill_loss(h.put(z), alpha === 0 ? 0 : h.put(zt), h.put(y), pdz, pst, R, V, temp, alpha, 1 / R)
      const dz = new Float32Array(R * V),
        st = new Float64Array(2 * R)
      distillLoss(z, alpha === 0 ? null : zt, y, dz, st, R, V, temp, alpha, 1 / R)
      expectSameBits(h.f32(pdz, R * V), dz, `dlogits R=${R} V=${V}`)
      expectSameBits(h.f64(pst, 2 * R), st, `stats R=${R} V=${V}`)
      expect(Number.isNaN(st[4])).toBe(true)
      expect(st[2]).toBe(0)
    }
  })

  it('gives f64 CE and KL, and the gradient of the combined loss, to f32 accuracy', () => {
    const r = rng(12)
    for (const { R, V, temp, alpha } of cases) {
      const z = normalish(r, R * V, 3),
        zt = normalish(r, R * V, 3)
      const y = Int32Array.from({ length: R }, (_, t) => (t === 1 ? -1 : Math.floor(r() * V)))
      const dz = new Float32Array(R * V),
        st = new Float64Array(2 * R)
      const scale = 1 / (R - 1)
      distillLoss(z, zt, y, dz, st, R, V, temp, alpha, scale)
      const zd = f64(z)
      const ref = distillF64(zd, zt, y, R, V, temp, alpha, scale)
      for (let t = 0; t < R; t++) {
        expect(Math.abs(st[2 * t] - ref.ce[t])).toBeLessThan(1e-6 * Math.max(1, ref.ce[t]))
        expect(Math.abs(st[2 * t + 1] - ref.kl[t])).toBeLessThan(1e-6 * Math.max(1, ref.kl[t]))
      }
      const num = numericGrad(zd, () => distillF64(zd, zt, y, R, V, temp, alpha, scale).loss)
      expect(relErr(dz, num)).toBeLessThan(1e-4)
    }
  })
})
