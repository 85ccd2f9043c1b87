import { describe, expect, it } from 'vitest'
import type { ActivationReport } from '@contract/api'
import {
  columnBlocks,
  persistenceLayout,
  persistenceOption,
  persistenceRows,
  persistentChannels,
  poolMax,
} from './persistence-option'
import { input, report } from '../testing/activation-report'

describe('persistence', () => {
  const r = report()

  it('keeps the hidden-size inputs only, ordered by layer with qkv before gate_up', () => {
    expect(persistenceRows(r).map((row) => row.label)).toEqual(['L0 qkv', 'L0 gate_up', 'L1 qkv', 'L1 gate_up'])
  })

  it('draws one heatmap cell per row and channel, and the counts beneath on the same channels', () => {
    const option = persistenceOption(r) as {
      series: { type: string; data: unknown[] }[]
      xAxis: { data: string[] }[]
      dataZoom: { xAxisIndex: number[] }[]
    }
    const cells = option.series[0].data as [number, number, number][]
    const rows = persistenceRows(r)
    expect(cells).toHaveLength(rows.length * 4)
    for (const [x, y, v] of cells) expect(v).toBe(rows[y].absmax[x])
    expect(option.series[1].data).toEqual(r.persistence.counts)
    expect(option.xAxis[0].data).toEqual(option.xAxis[1].data)
    // One zoom drives both axes, so stripes and bars stay aligned.
    for (const z of option.dataZoom) expect(z.xAxisIndex).toEqual([0, 1])
  })

  it('counts a channel once per input it is an outlier in', () => {
    // Channel 3: L0 qkv (8) and L1 qkv (7); channel 1: L0 gate_up (6.5), L1 qkv (10), L1 gate_up (9).
    expect(persistentChannels(r)).toEqual([
      { channel: 1, count: 3 },
      { channel: 3, count: 2 },
      { channel: 0, count: 1 },
    ])
  })

  it('covers every channel exactly once when pooling columns', () => {
    for (const [channels, max] of [
      [4096, 1024],
      [11008, 1024],
      [64, 1024],
      [1000, 7],
      [5, 5],
    ]) {
      const blocks = columnBlocks(channels, max)
      expect(blocks).toHaveLength(Math.min(channels, max))
      let next = 0
      for (const [first, last] of blocks) {
        expect(first).toBe(next)
        expect(last).toBeGreaterThanOrEqual(first)
        next = last + 1
      }
      expect(next).toBe(channels)
    }
  })

  it('pools by the largest finite value of each block', () => {
    const values = Array.from({ length: 10 }, (_, i) => ((i * 7) % 10) - 3)
    values[4] = Number.NaN
    const blocks = columnBlocks(10, 3)
    const pooled = poolMax(values, blocks)
    blocks.forEach(([first, last], c) => {
      const finite = values.slice(first, last + 1).filter(Number.isFinite)
      expect(pooled[c]).toBe(Math.max(...finite))
    })
    // A block past the end of a short row has nothing to show.
    expect(
      poolMax(
        [1, 2],
        [
          [0, 0],
          [5, 6],
        ],
      ),
    ).toEqual([1, Number.NaN])
  })

  it('pools a wide model into at most the column limit, labelling columns by their first channel', () => {
    const channels = 3000
    const wide: ActivationReport = {
      ...r,
      inputs: [
        input(
          0,
          'qkv',
          Array.from({ length: channels }, (_, i) => (i === 2999 ? 50 : 1)),
        ),
      ],
      persistence: { channels, inputs: 1, counts: Array.from({ length: channels }, (_, i) => (i === 2999 ? 1 : 0)) },
    }
    const option = persistenceOption(wide, 1000) as { series: { data: unknown[] }[]; xAxis: { data: string[] }[] }
    const cells = option.series[0].data as [number, number, number][]
    expect(cells).toHaveLength(1000)
    expect(cells.at(-1)).toEqual([999, 0, 50])
    expect(option.xAxis[1].data.slice(0, 3)).toEqual(['0', '3', '6'])
    expect((option.series[1].data as number[]).at(-1)).toBe(1)
  })

  it('grows with the number of rows but stays on a screen', () => {
    const few = persistenceLayout(4)
    const many = persistenceLayout(64)
    const absurd = persistenceLayout(10_000)
    expect(many.heatmapHeight).toBeGreaterThan(few.heatmapHeight)
    expect(absurd.heatmapHeight).toBeLessThanOrEqual(900)
    for (const l of [few, many, absurd]) {
      expect(l.barsTop).toBeGreaterThan(l.heatmapTop + l.heatmapHeight)
      expect(l.height).toBeGreaterThan(l.barsTop + l.barsHeight)
    }
  })
})
