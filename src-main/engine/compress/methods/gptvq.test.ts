// GPTVQ on a synthetic Linear with correlated inputs: what it stores (every vector one stored codebook
// entry), what its error feedback buys over plain nearest-centroid coding with the same codebooks, the
// WASM lazy update against the TS one, the picture it leaves, the codebook update, and bad input.

import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { WhittleError } from '../../errors'
import { WorkerPool } from '../../pool/worker-pool'
import { nearestCentroid } from '../quant/vq-codebook'
import { correlatedInputs, gram, lcg, outputError } from '../testing/synthetic-layer'
import { gptvq, gptvqQuantize, GRID_POINTS, type GptvqParams } from './gptvq'

const params = (over: Record<string, unknown> = {}): GptvqParams => gptvq.parseParams(over, 'recipe step 1 (gptvq)')

describe('gptvqQuantize', () => {
  const T = 400,
    K = 64,
    rows = 48
  const X = correlatedInputs(T, K, 7)
  const H = gram(X, T, K)
  const W = Float32Array.from({ length: rows * K }, lcg(3))
  let pool: WorkerPool
  beforeAll(async () => {
    pool = await WorkerPool.create({ threads: 2 })
  })
  afterAll(() => pool?.close())

  it('replaces every vector by an int8-stored entry of its codebook, at the counted bits', async () => {
    // 32 columns × 24 rows per codebook: 2 × 2 codebooks of 16 entries (2 bits per weight, 2-D).
    const p = params({ bits: 2, group_size: 768, columns_per_group: 32, block_size: 16 })
    const Q = W.slice()
    const r = await gptvqQuantize(Q, rows, K, H, p, pool)
    expect(r.codebooks).toHaveLength(4)
    for (const [i, cb] of r.codebooks.entries()) {
      expect(cb).toHaveLength(16 * 2)
      for (const v of cb) {
        const code = v / r.scales[i]
        expect(Math.abs(code - Math.round(code))).toBeLessThan(1e-3)
        expect(Math.abs(code)).toBeLessThanOrEqual(127.001)
      }
    }
    const flat = new Float32Array(4 * 32)
    r.codebooks.forEach((cb, i) => flat.set(cb, i * 32))
    expect(Array.from(r.layout.decode(flat, r.assignments, new Float32Array(rows * K)))).toEqual(Array.from(Q))
    expect(r.layout.bitsPerWeight()).toBeCloseTo(2 + (4 * (16 * 2 * 8 + 16)) / (rows * K), 12)
    expect(gptvq.predict(p, rows, K).bitsPerWeight).toBe(r.layout.bitsPerWeight())
  })

  it("GPTQ's error feedback beats coding each vector by its nearest entry of the same codebooks", async () => {
    const p = params({ group_size: 4096, block_size: 16 })
    const Q = W.slice()
    const r = await gptvqQuantize(Q, rows, K, H, p, pool)
    // Without feedback: each original vector to its nearest entry, under the same column weights.
    const plain = new Float32Array(rows * K)
    const ones = new Float32Array(2).fill(1)
    for (let row = 0; row < rows; row++)
      for (let c = 0; c < K; c += 2) {
        const cb = r.codebooks[r.layout.codebookOf(row, c)]
        const j = nearestCentroid(W, row * K + c, ones, 0, cb, 2)
        plain.set(cb.subarray(2 * j, 2 * j + 2), row * K + c)
      }
    const eVq = outputError(X, T, W, Q, rows, K)
    const ePlain = outputError(X, T, W, plain, rows, K)
    expect(eVq).toBeLessThan(0.8 * ePlain)
  })

  it('gives the same result with the WASM lazy update as with the TS one, blocks cut at group edges', async () => {
    // 24-column groups cut the 16-column blocks into 16 + 8: full blocks go to the kernels, the rest to TS.
    const p = params({ bits: 2, group_size: 24 * 48, columns_per_group: 24, block_size: 16 })
    const ts = W.slice(),
      wasm = W.slice()
    await gptvqQuantize(ts, rows, K, H, p)
    await gptvqQuantize(wasm, rows, K, H, p, pool)
    let same = 0
    for (let i = 0; i < ts.length; i++) if (Math.abs(ts[i] - wasm[i]) < 1e-6) same++
    expect(same / ts.length).toBeGreaterThan(0.97)
    const eTs = outputError(X, T, W, ts, rows, K)
    expect(Math.abs(outputError(X, T, W, wasm, rows, K) / eTs - 1)).toBeLessThan(0.02)
    // Kernel buffers are released.
    const before = pool.arena.liveBytes
    await gptvqQuantize(W.slice(), rows, K, H, p, pool)
    expect(pool.arena.liveBytes).toBe(before)
  })

  it('leaves the first codebook over the weight pairs it was fitted to (2-D)', async () => {
    const p = params({ group_size: 4096 })
    const r = await gptvqQuantize(W.slice(), rows, K, H, p, pool)
    const grid = r.grid
    if (grid?.kind !== 'codebook2d') throw new Error('no codebook2d grid')
    expect(grid.group).toBe(0)
    expect(grid.centroids).toEqual(
      Array.from({ length: 64 }, (_, j) => [r.codebooks[0][2 * j], r.codebooks[0][2 * j + 1]]),
    )
    // The first group is fitted before any feedback reached it: its points are the weight's own pairs.
    expect(grid.points).toHaveLength(Math.min(GRID_POINTS, (rows * K) / 2))
    const pairs = new Set<string>()
    for (let i = 0; i < rows * K; i += 2) pairs.add(`${W[i]},${W[i + 1]}`)
    for (const [a, b] of grid.points) expect(pairs.has(`${a},${b}`)).toBe(true)
    // 4-D codebooks have no 2-D picture.
    expect((await gptvqQuantize(W.slice(), rows, K, H, params({ dim: 4, bits: 1.5 }), pool)).grid).toBeUndefined()
  })

  it('4-D: vectors of four columns from 2^(2·4) entries', async () => {
    const p = params({ dim: 4, bits: 2, group_size: 3072 })
    const Q = W.slice()
    const r = await gptvqQuantize(Q, rows, K, H, p, pool)
    expect(r.layout.k).toBe(256)
    for (let row = 0; row < rows; row += 7)
      for (let c = 0; c < K; c += 4) {
        const cb = r.codebooks[r.layout.codebookOf(row, c)]
        const j = r.assignments[row * (K / 4) + c / 4]
        expect(Array.from(Q.subarray(row * K + c, row * K + c + 4))).toEqual(Array.from(cb.subarray(4 * j, 4 * j + 4)))
      }
    expect(outputError(X, T, W, Q, rows, K)).toBeLessThan(0.5)
  })

  it('the codebook update lowers the output error it minimizes, and keeps the stored form', async () => {
    const Q = W.slice()
    const r = await gptvqQuantize(Q, rows, K, H, params({ group_size: 1024, update_codebook: true }), pool)
    expect(r.update?.kept).toBe(true)
    expect(r.update!.lossAfter).toBeLessThan(r.update!.lossBefore)
    const plainQ = W.slice()
    await gptvqQuantize(plainQ, rows, K, H, params({ group_size: 1024 }), pool)
    expect(outputError(X, T, W, Q, rows, K)).toBeLessThan(outputError(X, T, W, plainQ, rows, K))
    for (const [i, cb] of r.codebooks.entries())
      for (const v of cb) expect(Math.abs(v / r.scales[i] - Math.round(v / r.scales[i]))).toBeLessThan(1e-3)
  })

  it('refuses bad params and shapes with the step and the tensor named', async () => {
    expect(() => params({ bits: 2.3 })).toThrow(/step 1 \(gptvq\): params.bits/)
    expect(() => params({ dim: 3 })).toThrow(/params.dim must be 1, 2 or 4/)
    expect(() => params({ columns_per_group: 255 })).toThrow(/columns_per_group must be a multiple of dim 2/)
    expect(() => params({ block_size: 130, dim: 4 })).toThrow(/block_size must be a multiple of dim 4/)
    expect(() => params({ codebook_bits: 8 })).toThrow(/codebook_bits is not a parameter/)
    await expect(
      gptvqQuantize(new Float32Array(4 * 63), 4, 63, new Float64Array(63 * 63).fill(1), params()),
    ).rejects.toThrow(WhittleError)
    const l = {
      name: 'model.layers.0.mlp.down_proj.weight',
      role: 'down' as const,
      layer: 0,
      rows: 4,
      cols: 4,
      weight: new Float32Array(16),
      params: params(),
    }
    await expect(gptvq.compressGroup({ layer: 0, group: 'down', linears: [l], input: null, pool })).rejects.toThrow(
      /gptvq: layer 0 down has no calibration Hessian/,
    )
  })
})
