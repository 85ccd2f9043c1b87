import { describe, expect, it } from 'vitest'
import { minmaxGrid } from '../../numerics/minmax-grid'
import { GridRecorder, sequentialGIdx } from './record'

describe('GridRecorder', () => {
  const p = { bits: 8, groupSize: 2, sym: false }

  it('keeps each (group, row) grid, zeros in one byte each up to 255', () => {
    const rec = new GridRecorder(2, 4, 2, p, sequentialGIdx(4, 2))
    // Weights all below zero put the asymmetric zero at the top code, 255.
    const low = minmaxGrid([-3, -1], 0, 2, 1, 8, false)
    const wide = minmaxGrid([-1, 2], 0, 2, 1, 8, false)
    rec.set(1, 0, low)
    rec.set(0, 1, wide)
    expect(low.zero).toBe(255)
    expect(rec.record.zeros).toBeInstanceOf(Uint8Array)
    expect([...rec.record.zeros]).toEqual([0, wide.zero, 255, 0])
    expect(rec.record.scales[2]).toBe(low.scale)
    expect(rec.record.scales[1]).toBe(wide.scale)
  })

  it('refuses a zero a byte cannot hold rather than wrap it', () => {
    const rec = new GridRecorder(1, 2, 1, p, sequentialGIdx(2, 2))
    for (const zero of [256, -1, 2.5])
      expect(() => rec.set(0, 0, { scale: 1, zero, maxq: 255 })).toThrow(`zero ${zero} is not a code`)
  })
})
