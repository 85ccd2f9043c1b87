// GPTQ's WASM path (Hinv and lazy updates on the kernels) against its TS reference path, and both
// against what GPTQ is for: a smaller output error ‖X(W − Ŵ)ᵀ‖ than round-to-nearest on the same grid.

import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { WhittleError } from '../../errors'
import { WorkerPool } from '../../pool/worker-pool'
import { gptqQuantize, gptqQuantizePlanned, gptqQuantizePlannedLoopHere, planHessian, type GptqParams } from './gptq'
import { roundToF16 } from '../../numerics/float-encodings'
import { dequantizeRecord, isSequentialGIdx } from '../quant/record'
import { codesFromWeights } from '../quant/record'
import { rtnQuantize } from './rtn'
import { correlatedInputs, gram, lcg, outputError } from '../testing/synthetic-layer'

const params = (over: Partial<GptqParams>): GptqParams => ({
  bits: 4,
  groupSize: -1,
  sym: false,
  damp: 0.01,
  blockSize: 32,
  actOrder: false,
  staticGroups: false,
  scaleDtype: 'f16',
  ...over,
})

describe('gptqQuantize', () => {
  let pool: WorkerPool
  let inline: WorkerPool
  const T = 400,
    K = 200,
    rows = 48
  const X = correlatedInputs(T, K, 7)
  const H = gram(X, T, K)
  const W = Float32Array.from({ length: rows * K }, lcg(3))

  beforeAll(async () => {
    pool = await WorkerPool.create({ threads: 2 })
    inline = await WorkerPool.create({ threads: 0 })
  })
  afterAll(async () => {
    await pool?.close()
    await inline?.close()
  })

  const variants: [string, Partial<GptqParams>][] = [
    ['per channel', {}],
    ['g64', { groupSize: 64 }],
    ['act-order g64', { actOrder: true, groupSize: 64 }],
    ['act-order static groups g64', { actOrder: true, staticGroups: true, groupSize: 64 }],
    ['3 bits sym, block 50 (a partial last block)', { bits: 3, sym: true, blockSize: 50 }],
  ]
  for (const [label, over] of variants) {
    it(`${label}: the WASM path matches the TS reference path and beats RTN`, async () => {
      const p = params(over)
      const reference = W.slice(),
        wasm = W.slice(),
        rtn = W.slice()
      const { perm: permTs, record: recordTs } = await gptqQuantize(reference, rows, K, H, p)
      const { perm: permWasm, record } = await gptqQuantize(wasm, rows, K, H, p, pool)
      // The recorded grids (fp16 scales, g_idx) reproduce every quantized weight bit for bit.
      if (!record || !recordTs) throw new Error('GPTQ returned no grids')
      const packed = codesFromWeights(record, wasm, label)
      expect(Array.from(dequantizeRecord(packed))).toEqual(Array.from(wasm))
      expect(Array.from(dequantizeRecord(codesFromWeights(recordTs, reference, label)))).toEqual(Array.from(reference))
      for (const s of record.scales) expect(roundToF16(s)).toBe(s)
      if (over.actOrder && !over.staticGroups) expect(isSequentialGIdx(record.gIdx, 64)).toBe(false)
      expect(Array.from(permWasm)).toEqual(Array.from(permTs))
      // f32 sums in the kernel vs f64 in TS: grids may move by an ulp, and a value near a rounding
      // boundary may land one step (≈ 1/15 of a row's range) away; no more than that, and rarely.
      let same = 0
      for (let i = 0; i < reference.length; i++) if (Math.abs(reference[i] - wasm[i]) < 1e-5) same++
      expect(same / reference.length).toBeGreaterThan(0.98)
      const eTs = outputError(X, T, W, reference, rows, K)
      const eWasm = outputError(X, T, W, wasm, rows, K)
      expect(Math.abs(eWasm / eTs - 1)).toBeLessThan(0.01)
      rtnQuantize(rtn, rows, K, { bits: p.bits, groupSize: p.groupSize, sym: p.sym })
      expect(eWasm).toBeLessThan(0.9 * outputError(X, T, W, rtn, rows, K))
    })
  }

  it('gives the same bits on 2 workers as inline on the main thread', async () => {
    const a = W.slice(),
      b = W.slice()
    await gptqQuantize(a, rows, K, H, params({ groupSize: 64 }), pool)
    await gptqQuantize(b, rows, K, H, params({ groupSize: 64 }), inline)
    expect(Array.from(a)).toEqual(Array.from(b))
  })

  it('zeroes the weights of a dead input and quantizes the rest', async () => {
    const Hd = H.slice()
    const dead = 17
    for (let j = 0; j < K; j++) Hd[dead * K + j] = Hd[j * K + dead] = 0
    const w = W.slice()
    await gptqQuantize(w, rows, K, Hd, params({}), pool)
    for (let r = 0; r < rows; r++) expect(w[r * K + dead]).toBe(0)
    // Every other value is on its row's 16-level grid.
    for (let r = 0; r < 3; r++) expect(new Set(w.subarray(r * K, (r + 1) * K)).size).toBeLessThanOrEqual(16)
  })

  it('leaves kernel memory as it found it', async () => {
    const before = pool.arena.liveBytes
    await gptqQuantize(W.slice(), rows, K, H, params({}), pool)
    expect(pool.arena.liveBytes).toBe(before)
  })

  it('refuses a Hessian of the wrong size or a weight of the wrong shape with a WhittleError', async () => {
    expect(() => planHessian(H.subarray(0, K * K - 1), K, params({}))).toThrow(WhittleError)
    await expect(gptqQuantize(W.slice(0, rows * K - 1), rows, K, H, params({}), pool)).rejects.toThrow(WhittleError)
  })

  it('refuses a Hessian that damping cannot make positive definite', async () => {
    const bad = H.slice()
    bad[5 * K + 5] = -1e6
    await expect(gptqQuantize(W.slice(), rows, K, bad, params({}), pool)).rejects.toThrow(/positive definite/)
  })
})

// The column loop inside each block on the workers (gptq_block_rows, rows split) against the same loop on
// this thread, both with the lazy updates on the workers: the same bits, grids and permutation.
describe('gptqQuantizePlanned: the column loop on the workers', () => {
  let pool: WorkerPool
  const T = 300,
    K = 200,
    rows = 260 // 260 · 64² multiply-adds per block: enough to split the rows across both workers
  const X = correlatedInputs(T, K, 11)
  const H = gram(X, T, K)
  const W = Float32Array.from({ length: rows * K }, lcg(5))

  beforeAll(async () => {
    pool = await WorkerPool.create({ threads: 2 })
  })
  afterAll(async () => {
    await pool?.close()
  })

  const variants: [string, Partial<GptqParams>][] = [
    ['per channel', { blockSize: 64 }],
    ['g64, block 64', { groupSize: 64, blockSize: 64 }],
    ['g48, block 64 (groups start inside blocks)', { groupSize: 48, blockSize: 64 }],
    ['static groups g32', { groupSize: 32, staticGroups: true, blockSize: 64 }],
    ['act-order g40', { groupSize: 40, actOrder: true, blockSize: 64 }],
    ['3 bits sym g64, block 48 (a partial last block)', { bits: 3, sym: true, groupSize: 64, blockSize: 48 }],
    ['g64, one block wider than the weight (no lazy update)', { groupSize: 64, blockSize: 256 }],
  ]
  it.each(variants)('%s: the same bits as the loop on this thread', async (_label, over) => {
    const p = params(over)
    const plan = planHessian(H, K, p, pool)
    const here = W.slice(),
      workers = W.slice()
    const before = pool.arena.liveBytes
    const a = await gptqQuantizePlannedLoopHere(here, rows, K, plan, p, pool)
    const b = await gptqQuantizePlanned(workers, rows, K, plan, p, pool)
    expect(pool.arena.liveBytes).toBe(before)
    expect(Buffer.from(workers.buffer).equals(Buffer.from(here.buffer))).toBe(true)
    expect(b.record).toEqual(a.record)
    expect(Array.from(b.perm)).toEqual(Array.from(a.perm))
    // And it is GPTQ: better than round-to-nearest on the same grid.
    const rtn = W.slice()
    rtnQuantize(rtn, rows, K, { bits: p.bits, groupSize: p.groupSize, sym: p.sym })
    expect(outputError(X, T, W, workers, rows, K)).toBeLessThan(0.9 * outputError(X, T, W, rtn, rows, K))
  })
})

describe('gptqQuantizePlanned: pruned weights on the workers (preserve_zeros)', () => {
  let pool: WorkerPool
  const T = 300,
    K = 200,
    rows = 260
  const X = correlatedInputs(T, K, 13)
  const H = gram(X, T, K)
  // A quarter of the weights pruned by an earlier step.
  const W = Float32Array.from({ length: rows * K }, lcg(9)).map((w, i) => ((i * 7919) % 4 === 0 ? 0 : w))

  beforeAll(async () => {
    pool = await WorkerPool.create({ threads: 2 })
  })
  afterAll(async () => {
    await pool?.close()
  })

  it.each([
    ['g64, block 64', { groupSize: 64, blockSize: 64 }],
    ['per channel, act-order, block 48', { blockSize: 48, actOrder: true }],
  ] as [string, Partial<GptqParams>][])(
    '%s: the same bits as the loop on this thread, zeros kept',
    async (_l, over) => {
      const p = params({ ...over, preserveZeros: true })
      const plan = planHessian(H, K, p, pool)
      const here = W.slice(),
        workers = W.slice()
      const before = pool.arena.liveBytes
      await gptqQuantizePlannedLoopHere(here, rows, K, plan, p, pool)
      await gptqQuantizePlanned(workers, rows, K, plan, p, pool)
      expect(pool.arena.liveBytes).toBe(before)
      expect(Buffer.from(workers.buffer).equals(Buffer.from(here.buffer))).toBe(true)
      let zeros = 0
      for (let i = 0; i < W.length; i++)
        if (W[i] === 0) {
          expect(workers[i]).toBe(0)
          zeros++
        }
      expect(zeros).toBe(Math.ceil(W.length / 4))
    },
  )
})
