import { describe, expect, it } from 'vitest'
import type { ActivationInput, ActivationReport, InputGroup, SmoothingPreview } from '@contract/api'
import {
  activationChannelOption, activationLayers, activationOutliers, findInput, mostOutlierInput,
} from './activation-option'
import {
  columnBlocks, persistenceLayout, persistenceOption, persistenceRows, persistentChannels, poolMax,
} from './persistence-option'
import {
  findSmoothing, hardestSmoothing, logValues, nearestAlphaIndex, smoothingOption, smoothingRows,
} from './smoothing-option'

function input(layer: number, group: InputGroup, absmax: number[], threshold = 6): ActivationInput {
  return {
    layer, group, absmax,
    meanAbs: absmax.map((v) => v / 4),
    // Outliers by the report's own rule, computed here rather than copied.
    outliers: absmax.flatMap((v, i) => (v > threshold ? [i] : [])),
  }
}

const ALPHAS = [0, 0.25, 0.5, 0.75, 1]

function preview(layer: number, group: SmoothingPreview['group'], act: number[], weight: number[]): SmoothingPreview {
  return { layer, group, activationRange: act, weightRange: weight }
}

/** Two layers, hidden size 4, FFN 3; the report lists inputs in an order the views must not rely on. */
function report(): ActivationReport {
  const inputs = [
    input(1, 'gate_up', [1, 9, 2, 0.5]),
    input(0, 'qkv', [7, 1, 0.5, 8]),
    input(0, 'o', [1, 1, 1, 1]),
    input(0, 'gate_up', [1, 6.5, 1, 1]),
    input(0, 'down', [1, 2, 3]),
    input(1, 'qkv', [2, 10, 0.25, 7]),
    input(1, 'o', [1, 1, 1, 1]),
    input(1, 'down', [20, 30, 40]),
  ]
  const hidden = inputs.filter((i) => i.group === 'qkv' || i.group === 'gate_up')
  const counts = [0, 0, 0, 0]
  for (const i of hidden) for (const c of i.outliers) counts[c]++
  return {
    threshold: 6, samples: 2, seqlen: 8, tokens: 16, inputs,
    persistence: { channels: 4, inputs: hidden.length, counts },
    alphas: ALPHAS,
    smoothing: [
      preview(1, 'qkv', [10, 6, 4, 3, 2], [0.5, 1, 2, 3, 5]),
      preview(0, 'qkv', [8, 5, 3, 2, 1], [1, 2, 3, 5, 8]),
      preview(0, 'gate_up', [6.5, 4, 3, 2, 1], [1, 1.5, 2, 3, 4]),
      preview(1, 'gate_up', [9, 5, 3, 2, 1], [0, 1, 2, 3, 4]),
    ],
  }
}

describe('activation channels', () => {
  const r = report()

  it('finds inputs by layer and group, and lists layers once, ascending', () => {
    expect(activationLayers(r)).toEqual([0, 1])
    expect(findInput(r, 1, 'qkv')!.absmax).toEqual([2, 10, 0.25, 7])
    expect(findInput(r, 2, 'qkv')).toBeNull()
  })

  it('starts at the input with the most outliers, the earliest on ties', () => {
    // down of layer 1 has three channels above 6; nothing else has more than two.
    expect(mostOutlierInput(r)).toEqual({ layer: 1, group: 'down' })
    const tie: ActivationReport = { ...r, inputs: [input(3, 'o', [7, 1]), input(2, 'qkv', [1, 7])] }
    expect(mostOutlierInput(tie)).toEqual({ layer: 3, group: 'o' })
    expect(mostOutlierInput({ ...r, inputs: [] })).toBeNull()
  })

  it('lists outliers largest first, ignoring indices outside the input', () => {
    const i = { ...input(0, 'qkv', [7, 1, 0.5, 8]), outliers: [0, 3, 17, -2] }
    expect(activationOutliers(i)).toEqual([{ index: 3, absmax: 8 }, { index: 0, absmax: 7 }])
  })

  it('splits bars at the outliers and draws the threshold line at the report threshold', () => {
    const i = findInput(r, 0, 'qkv')!
    const option = activationChannelOption(i, 6) as {
      series: { data: (number | null)[]; markLine?: { data: { yAxis: number }[] } }[]
      yAxis: { max?: number }
      xAxis: { data: string[] }
    }
    expect(option.series[0].data).toEqual([null, 1, 0.5, null])
    expect(option.series[1].data).toEqual([7, null, null, 8])
    expect(option.series[0].markLine!.data[0].yAxis).toBe(6)
    expect(option.xAxis.data).toEqual(['0', '1', '2', '3'])
    // Some channel is above the line already: ECharts chooses the axis end.
    expect(option.yAxis.max).toBeUndefined()
  })

  it('stretches the axis to the threshold when every channel is below it', () => {
    const quiet = input(0, 'o', [1, 2, 1.5])
    const option = activationChannelOption(quiet, 6) as { yAxis: { max?: number } }
    expect(option.yAxis.max).toBeGreaterThanOrEqual(6)
  })
})

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
    expect(persistentChannels(r)).toEqual([{ channel: 1, count: 3 }, { channel: 3, count: 2 }, { channel: 0, count: 1 }])
  })

  it('covers every channel exactly once when pooling columns', () => {
    for (const [channels, max] of [[4096, 1024], [11008, 1024], [64, 1024], [1000, 7], [5, 5]]) {
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
    expect(poolMax([1, 2], [[0, 0], [5, 6]])).toEqual([1, Number.NaN])
  })

  it('pools a wide model into at most the column limit, labelling columns by their first channel', () => {
    const channels = 3000
    const wide: ActivationReport = {
      ...r,
      inputs: [input(0, 'qkv', Array.from({ length: channels }, (_, i) => (i === 2999 ? 50 : 1)))],
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

describe('smoothing preview', () => {
  const r = report()

  it('finds the nearest α, including between and beyond the grid', () => {
    expect(nearestAlphaIndex(ALPHAS, 0.5)).toBe(2)
    expect(nearestAlphaIndex(ALPHAS, 0.3)).toBe(1)
    expect(nearestAlphaIndex(ALPHAS, 7)).toBe(4)
    expect(nearestAlphaIndex([], 0.5)).toBe(0)
  })

  it('turns values a log axis cannot show into gaps', () => {
    expect(logValues([0, 0.5, 1], [2, 0, Number.NaN])).toEqual([2, null, null])
    expect(logValues([0, 1], [3])).toEqual([3, null])
  })

  it('draws both ranges against α on a log axis with a marker at the chosen α', () => {
    const p = findSmoothing(r, 1, 'gate_up')!
    const option = smoothingOption(p, ALPHAS, 0.5) as {
      xAxis: { data: string[] }
      yAxis: { type: string }
      series: { name: string; data: (number | null)[]; markLine?: { data: { xAxis: number }[]; label: { formatter: string } } }[]
    }
    expect(option.yAxis.type).toBe('log')
    expect(option.xAxis.data).toEqual(['0', '0.25', '0.5', '0.75', '1'])
    expect(option.series.map((s) => s.name)).toEqual(['activation range', 'weight range'])
    expect(option.series[0].data).toEqual([9, 5, 3, 2, 1])
    // The weight range of 0 at α = 0 cannot sit on a log axis.
    expect(option.series[1].data).toEqual([null, 1, 2, 3, 4])
    // The marker stands on the α = 0.5 category (index 2).
    expect(option.series[0].markLine!.data[0].xAxis).toBe(2)
    expect(option.series[0].markLine!.label.formatter).toBe('α = 0.5')
    const off = smoothingOption(p, ALPHAS, 0.7) as { series: { markLine?: { data: { xAxis: number }[] } }[] }
    expect(off.series[0].markLine!.data[0].xAxis).toBe(3)
  })

  it('tabulates every previewed input at the chosen α in model order, with its unsmoothed absmax', () => {
    const rows = smoothingRows(r, 0.7)
    expect(rows.map((x) => `${x.layer} ${x.group}`)).toEqual(['0 qkv', '0 gate_up', '1 qkv', '1 gate_up'])
    // α 0.7 is nearest 0.75, index 3.
    expect(rows[2]).toEqual({ layer: 1, group: 'qkv', activationAbsmax: 10, activationRange: 3, weightRange: 3 })
    expect(rows[1].activationAbsmax).toBe(6.5)
  })

  it('starts at the input hardest to quantize: the largest unsmoothed activation', () => {
    expect(hardestSmoothing(r)).toEqual({ layer: 1, group: 'qkv' })
    expect(hardestSmoothing({ ...r, smoothing: [] })).toBeNull()
  })
})
