// The pruners on synthetic layers: selection rules against naive re-statements, SparseGPT's WASM path
// against its TS path and against what it is for (a smaller output error than magnitude or Wanda at equal
// sparsity), joint 4-bit quantization that exports, and the errors bad params get.

import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { WorkerPool } from '../../pool/worker-pool'
import { checkNm, zeroFraction } from '../prune/sparsity'
import { parsePattern, pruneMatrix, pruneRows, sparseBitsPerWeight } from '../prune/select'
import { codesFromWeights } from '../quant/record'
import { correlatedInputs, gram, lcg, outputError } from '../testing/synthetic-layer'
import { gptqQuantizePlanned, planHessian, type GptqParams } from './gptq'
import { globalMagnitudeThreshold, magnitude } from './magnitude'
import { sparsegpt } from './sparsegpt'
import { wanda, wandaScores } from './wanda'

const T = 400,
  K = 256,
  rows = 32
const X = correlatedInputs(T, K, 11)
const H = gram(X, T, K)
const W = Float32Array.from({ length: rows * K }, lcg(5))
const sumSq = new Float64Array(K)
for (let t = 0; t < T; t++) for (let k = 0; k < K; k++) sumSq[k] += X[t * K + k] ** 2

const loop = (over: Partial<GptqParams> = {}): GptqParams => ({
  bits: 8,
  groupSize: -1,
  sym: false,
  damp: 0.01,
  blockSize: 128,
  actOrder: false,
  staticGroups: false,
  scaleDtype: 'f16',
  ...over,
})

describe('selection rules', () => {
  it('per matrix: everything at or below the score at ⌊p·n⌋ of the sorted scores', () => {
    const w = Float32Array.from([5, -1, 3, 3, -2, 4])
    pruneMatrix(w, w.map(Math.abs), 0.5)
    // sorted |w| = 1 2 3 3 4 5, index 3 → 3: both 3s go, so 4 of 6 are pruned.
    expect(Array.from(w)).toEqual([5, 0, 0, 0, 0, 4])
  })

  it('per row: ⌊p·cols⌋ per row, ties broken by column order', () => {
    const w = Float32Array.from([1, 1, 1, 1, 4, 3, 2, 1])
    pruneRows(w, w.map(Math.abs), 2, 4, 0.5)
    expect(Array.from(w)).toEqual([0, 0, 1, 1, 4, 3, 0, 0])
  })

  it('the global threshold equals the naive one over all targets', async () => {
    const parts = [
      Float32Array.from({ length: 999 }, lcg(1)),
      Float32Array.from({ length: 4097 }, lcg(2)),
      new Float32Array(50),
    ]
    const all = parts.flatMap((p) => Array.from(p, Math.abs)).sort((a, b) => a - b)
    for (const p of [0.1, 0.5, 0.9]) {
      const targets = parts.map((w, i) => ({
        name: `t${i}`,
        rows: 1,
        cols: w.length,
        params: {},
        read: async () => w.slice(),
      }))
      expect(await globalMagnitudeThreshold(targets, p)).toBe(all[Math.floor(all.length * p)])
    }
  })

  it('Wanda scores are |W| · sqrt(mean Σx²)', () => {
    const s = wandaScores(Float32Array.from([-2, 3]), 1, 2, Float64Array.from([8, 18]), 2)
    expect(Array.from(s)).toEqual([4, 9])
  })

  it('reports storage for sparse formats: 50% unstructured fp16 = 9 bits, 2:4 = 9 bits (2-bit indices)', () => {
    expect(sparseBitsPerWeight(0.5, null)).toBe(9)
    expect(sparseBitsPerWeight(0.5, { n: 2, m: 4 })).toBe(9)
  })

  it('names the step and field in parameter errors', () => {
    expect(() => parsePattern('4:2', 'recipe step 1 (wanda): params.pattern')).toThrow(
      /step 1 \(wanda\): params.pattern must be "N:M"/,
    )
    expect(() => wanda.parseParams({ pattern: '2:4', sparsity: 0.3 }, 'recipe step 2 (wanda)')).toThrow(
      /step 2 \(wanda\): params.sparsity is 0.3, but pattern 2:4 prunes 0.5/,
    )
    expect(() => magnitude.parseParams({ scope: 'tensor' }, 's')).toThrow(
      /params.scope must be one of layer, row, global/,
    )
    expect(() => magnitude.parseParams({ sparsity: 1.5 }, 's')).toThrow(
      /params.sparsity must be a number in \[0, 0.999\]/,
    )
    expect(() => sparsegpt.parseParams({ group_size: 32 }, 's')).toThrow(/params.group_size applies only with bits/)
    expect(() => sparsegpt.parseParams({ pattern: '2:3', block_size: 128 }, 's')).toThrow(
      /block_size must be a multiple of M = 3/,
    )
  })
})

describe('SparseGPT on a synthetic layer', () => {
  let pool: WorkerPool
  beforeAll(async () => {
    pool = await WorkerPool.create({ threads: 2 })
  })
  afterAll(() => pool?.close())

  it('the WASM path agrees with the TS path, and beats Wanda and magnitude at 50%', async () => {
    const plan = planHessian(H, K, { damp: 0.01, actOrder: false })
    const ts = W.slice(),
      wasm = W.slice()
    await gptqQuantizePlanned(ts, rows, K, plan, loop(), undefined, { sparsity: 0.5, pattern: null }, false)
    await gptqQuantizePlanned(
      wasm,
      rows,
      K,
      planHessian(H, K, { damp: 0.01, actOrder: false }, pool),
      loop(),
      pool,
      { sparsity: 0.5, pattern: null },
      false,
    )
    // Each 128-column block prunes at least half its weights (ties at the threshold prune more).
    for (const w of [ts, wasm]) expect(zeroFraction(w)).toBeGreaterThanOrEqual(0.5)
    let sameMask = 0
    for (let i = 0; i < ts.length; i++) if ((ts[i] === 0) === (wasm[i] === 0)) sameMask++
    expect(sameMask / ts.length).toBeGreaterThan(0.99)
    const eSparse = outputError(X, T, W, wasm, rows, K)
    expect(Math.abs(eSparse / outputError(X, T, W, ts, rows, K) - 1)).toBeLessThan(0.02)
    const byWanda = W.slice()
    pruneRows(byWanda, wandaScores(byWanda, rows, K, sumSq, 1), rows, K, 0.5)
    const byMagnitude = W.slice()
    pruneMatrix(byMagnitude, byMagnitude.map(Math.abs), 0.5)
    expect(eSparse).toBeLessThan(outputError(X, T, W, byWanda, rows, K))
    expect(outputError(X, T, W, byWanda, rows, K)).toBeLessThanOrEqual(outputError(X, T, W, byMagnitude, rows, K))
  })

  it('GPTQ after pruning keeps the zeros (preserve_zeros), and refills them without it', async () => {
    const pruned = W.slice()
    pruneMatrix(pruned, pruned.map(Math.abs), 0.5)
    const kept = pruned.slice(),
      refilled = pruned.slice()
    await gptqQuantizePlanned(
      kept,
      rows,
      K,
      planHessian(H, K, { damp: 0.01, actOrder: true }, pool),
      loop({ bits: 4, actOrder: true, preserveZeros: true }),
      pool,
    )
    await gptqQuantizePlanned(
      refilled,
      rows,
      K,
      planHessian(H, K, { damp: 0.01, actOrder: false }, pool),
      loop({ bits: 4, preserveZeros: false }),
      pool,
    )
    for (let i = 0; i < pruned.length; i++) if (pruned[i] === 0) expect(kept[i]).toBe(0)
    // Without it, error feedback moves many pruned weights off zero.
    let refilledCount = 0
    for (let i = 0; i < pruned.length; i++) if (pruned[i] === 0 && refilled[i] !== 0) refilledCount++
    expect(refilledCount / pruned.length).toBeGreaterThan(0.05)
  })

  it('2:4 with joint 4-bit quantization: the pattern holds, zeros sit on the grid, the grids export', async () => {
    const w = W.slice()
    const plan = planHessian(H, K, { damp: 0.01, actOrder: false }, pool)
    const { record } = await gptqQuantizePlanned(
      w,
      rows,
      K,
      plan,
      loop({ bits: 4, groupSize: 64 }),
      pool,
      { sparsity: 0.5, pattern: { n: 2, m: 4 } },
      true,
    )
    expect(checkNm(w, rows, K, 2, 4).valid).toBe(true)
    expect(zeroFraction(w)).toBeGreaterThanOrEqual(0.5)
    const packed = codesFromWeights(record!, w, 'synthetic')
    expect(packed.codes.length).toBe(rows * K)
    // Every kept weight is one of its row-group's 16 levels.
    expect(new Set(Array.from(w.subarray(0, 64))).size).toBeLessThanOrEqual(16)
  })
})
