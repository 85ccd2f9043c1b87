// The Hessian accumulation on a real worker pool (KernelHessian, accumulateHessianWasm) against the
// kernels' twin, bit for bit. Timings are printed, never asserted.

import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { colInputStats } from '../../../kernels/reference/channels'
import { hessianAccumulate } from '../../../kernels/reference/hessian'
import { firstBitDifference, normalish, rng } from '../../../kernels/testing/kernel-harness'
import { WhittleError } from '../errors'
import { WorkerPool } from '../pool/worker-pool'
import { KernelHessian, accumulateHessianWasm, splitTriangleRows } from './kernel-hessian'

/** The twins' H (upper triangle) and column statistics of the batches, in order. */
function twinOf(batches: { M: number; x: Float32Array }[], K: number) {
  const want = new Float64Array(K * K)
  const wantStats = { absmax: new Float32Array(K), sumAbs: new Float64Array(K), sumSq: new Float64Array(K) }
  for (const b of batches) {
    hessianAccumulate(b.x, want, b.M, K)
    colInputStats(b.x, b.M, K, wantStats.absmax, wantStats.sumAbs, wantStats.sumSq)
  }
  return { want, wantStats }
}

describe('Hessian accumulation on a worker pool', () => {
  let pool: WorkerPool
  beforeAll(async () => {
    pool = await WorkerPool.create({ threads: 2 })
  })
  afterAll(async () => {
    await pool.close()
  })

  it('splitTriangleRows covers [0, K) in ranges of about equal area on multiples of 4', () => {
    for (const [K, parts] of [
      [1000, 2],
      [2048, 8],
      [130, 3],
      [5, 4],
      [4096, 1],
    ]) {
      const b = splitTriangleRows(K, parts)
      expect(b[0]).toBe(0)
      expect(b[b.length - 1]).toBe(K)
      for (let p = 1; p < b.length; p++) expect(b[p]).toBeGreaterThan(b[p - 1])
      for (let p = 1; p < b.length - 1; p++) expect(b[p] % 4).toBe(0)
      if (K >= 1000) {
        const area = (i0: number, i1: number) => {
          let s = 0
          for (let i = i0; i < i1; i++) s += K - i
          return s
        }
        const areas = b.slice(1).map((end, p) => area(b[p], end))
        expect(Math.max(...areas) / Math.min(...areas)).toBeLessThan(1.05)
      }
    }
  })

  it('KernelHessian over several batches equals the twin (and capture order) bit for bit, mirrored', async () => {
    const K = 261,
      r = rng(21)
    const batches = [70, 1, 300].map((M) => ({ M, x: normalish(r, M * K) }))
    const acc = new KernelHessian(pool, K)
    const want = new Float64Array(K * K)
    try {
      // Adds queued without awaiting still land in call order.
      await Promise.all(batches.map((b) => acc.add(b.x, b.M)))
      for (const b of batches) hessianAccumulate(b.x, want, b.M, K)
      expect(acc.tokens).toBe(371)
      const full = acc.toArray()
      for (let i = 0; i < K; i++)
        for (let j = i; j < K; j++) {
          expect(full[i * K + j]).toBe(want[i * K + j])
          expect(full[j * K + i]).toBe(want[i * K + j])
        }
      await expect(acc.add(new Float32Array(5), 1)).rejects.toThrow(WhittleError)
    } finally {
      acc.free()
    }
    expect(() => acc.toArray()).toThrow(WhittleError)
    acc.free()
  })

  it('keeps the column statistics of the same batches, like the twin, when asked (split or not)', async () => {
    for (const K of [61, 261]) {
      const r = rng(K)
      const batches = [70, 1, 300].map((M) => ({ M, x: normalish(r, M * K, 0.5, -0.1) }))
      const before = pool.arena.liveBytes
      const acc = new KernelHessian(pool, K, undefined, { columnStats: true })
      const want = { absmax: new Float32Array(K), sumAbs: new Float64Array(K), sumSq: new Float64Array(K) }
      try {
        await Promise.all(batches.map((b) => acc.add(b.x, b.M)))
        for (const b of batches) colInputStats(b.x, b.M, K, want.absmax, want.sumAbs, want.sumSq)
        const got = acc.columnStats()
        expect(firstBitDifference(got.absmax, want.absmax)).toBe(-1)
        expect(firstBitDifference(got.sumAbs, want.sumAbs)).toBe(-1)
        expect(firstBitDifference(got.sumSq, want.sumSq)).toBe(-1)
        expect(got.sumAbs[0]).toBeGreaterThan(0)
      } finally {
        acc.free()
      }
      expect(pool.arena.liveBytes).toBe(before)
    }
    const plain = new KernelHessian(pool, 8)
    expect(() => plain.columnStats()).toThrow(WhittleError)
    plain.free()
  })

  it('addSnapshot copies x at once (staged in kernel memory, or in JS when that is full): the same bits as add', async () => {
    const K = 64,
      r = rng(33)
    // 45,000 rows are more than one chunk of inputs (32,768 rows at K = 64): copied through JS they go in two
    // parts, staged in one; the sums must agree with the twin either way.
    const batches = [70, 45000, 1].map((M) => ({ M, x: normalish(r, M * K, 0.5, 0.1) }))
    const { want, wantStats } = twinOf(batches, K)
    const upper = (h: Float64Array) => h.filter((_, i) => i % K >= Math.floor(i / K))
    const before = pool.arena.liveBytes
    // Run 0 stages every batch in kernel memory. Run 1 first leaves 9–10 MiB free: room for one 8 MiB chunk
    // of the JS path, not for the 11 MiB batch, which must fall back. Run 2 leaves under 1 MiB: the large
    // batch finds no room at all and is added on this thread, through the twins.
    for (const leaveMiB of [null, 9, 0]) {
      const acc = new KernelHessian(pool, K, undefined, { columnStats: true })
      const fillers = []
      if (leaveMiB !== null) {
        for (;;) {
          try {
            fillers.push(pool.arena.alloc(2 ** 20, 'a filler'))
          } catch (e) {
            if (!(e instanceof WhittleError) || e.code !== 'out-of-memory') throw e
            break
          }
        }
        for (const f of leaveMiB > 0 ? fillers.splice(-leaveMiB) : []) pool.arena.release(f)
        expect(() => pool.arena.release(pool.arena.alloc(45000 * K * 4, 'a probe'))).toThrow(WhittleError)
        if (leaveMiB === 0) expect(pool.arena.headroom).toBeLessThan(2 ** 21)
      }
      try {
        const adds = batches.map((b) => {
          const x = b.x.slice()
          const done = acc.addSnapshot(x, b.M)
          x.fill(NaN) // the caller's buffer changes as soon as addSnapshot returns
          return done
        })
        await Promise.all(adds)
        expect(acc.tokens).toBe(45071)
        expect(firstBitDifference(upper(acc.toArray()), upper(want))).toBe(-1)
        const got = acc.columnStats()
        expect(firstBitDifference(got.absmax, wantStats.absmax)).toBe(-1)
        expect(firstBitDifference(got.sumSq, wantStats.sumSq)).toBe(-1)
        await expect(acc.addSnapshot(new Float32Array(5), 1)).rejects.toThrow(WhittleError)
      } finally {
        acc.free()
        for (const f of fillers) pool.arena.release(f)
      }
      expect(pool.arena.liveBytes).toBe(before)
    }
  })

  it('addInKernelMemory reads batches where they lie in kernel memory: the same bits as add, banded too', async () => {
    for (const [K, banded] of [
      [64, false], // one worker per batch
      [261, false], // split over the workers
      [261, true],
    ] as const) {
      const r = rng(K + 40)
      const batches = [70, 1, 300].map((M) => ({ M, x: normalish(r, M * K, 0.5, 0.2) }))
      const { want, wantStats } = twinOf(batches, K)
      const before = pool.arena.liveBytes
      const regions = batches.map((b) => {
        const region = pool.arena.alloc(b.M * K * 4, 'a batch')
        pool.arena.f32(region, 0, b.M * K).set(b.x)
        return region
      })
      const acc = new KernelHessian(pool, K, undefined, { columnStats: true, banded, bandBytes: 40 * K * 8 })
      try {
        await Promise.all(batches.map((b, i) => acc.addInKernelMemory(regions[i].ptr, b.M)))
        expect(acc.tokens).toBe(371)
        const full = acc.toArray()
        for (let i = 0; i < K; i++) for (let j = i; j < K; j++) expect(full[i * K + j]).toBe(want[i * K + j])
        if (!banded) {
          const got = acc.columnStats()
          expect(firstBitDifference(got.absmax, wantStats.absmax)).toBe(-1)
          expect(firstBitDifference(got.sumSq, wantStats.sumSq)).toBe(-1)
        }
      } finally {
        acc.free()
        for (const region of regions) pool.arena.release(region)
      }
      expect(pool.arena.liveBytes).toBe(before)
    }
    const acc = new KernelHessian(pool, 8)
    try {
      for (const ptr of [0, -16, 6, 1.5, NaN]) await expect(acc.addInKernelMemory(ptr, 1)).rejects.toThrow(WhittleError)
      await expect(acc.addInKernelMemory(1024, -1)).rejects.toThrow(WhittleError)
    } finally {
      acc.free()
    }
  })

  it('banded (H in JS memory, a band of rows at a time in kernel memory): the same bits, only the band held there', async () => {
    for (const [K, bandRows] of [
      [261, 20], // 14 bands, the last one row; split over the workers
      [61, 8], // below the split size: one worker per band
      [130, 400], // one band holds all
    ]) {
      const r = rng(K + 1)
      const batches = [70, 1, 300].map((M) => ({ M, x: normalish(r, M * K, 0.5, -0.1) }))
      const initial = normalish(rng(K + 2), K * K).reduce((a, v, i) => ((a[i] = v), a), new Float64Array(K * K))
      const want = initial.slice()
      const wantStats = { absmax: new Float32Array(K), sumAbs: new Float64Array(K), sumSq: new Float64Array(K) }
      for (const b of batches) {
        hessianAccumulate(b.x, want, b.M, K)
        colInputStats(b.x, b.M, K, wantStats.absmax, wantStats.sumAbs, wantStats.sumSq)
      }
      const before = pool.arena.liveBytes
      const acc = new KernelHessian(pool, K, initial, { columnStats: true, banded: true, bandBytes: K * 8 * bandRows })
      try {
        // Kernel memory holds the band and the statistics, not H.
        expect(pool.arena.liveBytes - before).toBeLessThan(Math.min(K, bandRows) * K * 8 + K * 20 + 256)
        await Promise.all([acc.add(batches[0].x, 70), acc.addSnapshot(batches[1].x, 1), acc.add(batches[2].x, 300)])
        expect(acc.tokens).toBe(371)
        const copy = new Float64Array(K * K)
        acc.copyTo(copy)
        const full = acc.toArray()
        for (let i = 0; i < K; i++)
          for (let j = i; j < K; j++) {
            expect(full[i * K + j]).toBe(want[i * K + j])
            expect(full[j * K + i]).toBe(want[i * K + j])
            expect(copy[i * K + j]).toBe(want[i * K + j])
          }
        const got = acc.columnStats()
        expect(firstBitDifference(got.absmax, wantStats.absmax)).toBe(-1)
        expect(firstBitDifference(got.sumAbs, wantStats.sumAbs)).toBe(-1)
        expect(firstBitDifference(got.sumSq, wantStats.sumSq)).toBe(-1)
        // toArray gave H itself away: no more batches.
        await expect(acc.add(batches[1].x, 1)).rejects.toThrow(WhittleError)
      } finally {
        acc.free()
      }
      expect(pool.arena.liveBytes).toBe(before)
    }
  })

  it('accumulateHessianWasm adds into a JS Hessian like the twin, splitting rows over the workers', async () => {
    const M = 50,
      K = 200
    const x = normalish(rng(5), M * K)
    const H = normalish(rng(6), K * K).reduce(
      (a, v, i) => {
        a[i] = v
        return a
      },
      new Float64Array(K * K),
    )
    const want = H.slice()
    hessianAccumulate(x, want, M, K)
    const before = pool.arena.liveBytes
    await accumulateHessianWasm(pool, x, M, K, H)
    expect(pool.arena.liveBytes).toBe(before)
    expect(firstBitDifference(H, want)).toBe(-1)
  })

  it('prints timings (not asserted): Hessian GFLOP/s', async () => {
    const lines: string[] = []
    const M = 4096,
      K = 2048
    const x = normalish(rng(1), M * K)
    const acc = new KernelHessian(pool, K)
    try {
      const t = performance.now()
      await acc.add(x, M)
      const s = (performance.now() - t) / 1000
      const flops = M * K * (K + 1) // one multiply and one add per upper-triangle entry and token
      lines.push(
        `hessian_accumulate M=${M} K=${K} on ${pool.threads} workers: ${(s * 1000).toFixed(0)} ms, ${(flops / s / 1e9).toFixed(2)} GFLOP/s`,
      )
    } finally {
      acc.free()
    }
    console.log(lines.join('\n'))
  }, 120_000)
})
