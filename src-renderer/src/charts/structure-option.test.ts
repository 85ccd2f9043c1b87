import { describe, expect, it } from 'vitest'
import type { BlockShape, ResultPoint } from '@contract/api'
import { BLOCK_WIDTHS, blockBarsOption, keptPercent, structureSweepOption } from './structure-option'

const block = (layer: number, hidden: number, heads: number, mlp: number): BlockShape => ({
  layer,
  hidden: [64, hidden],
  heads: [8, heads],
  kvHeads: [4, heads / 2],
  intermediate: [172, mlp],
})

describe('structure charts', () => {
  it('draws kept / original per block for hidden dims, heads and neurons', () => {
    const o = blockBarsOption([block(0, 48, 8, 172), block(1, 64, 4, 86)]) as {
      series: { name: string; data: number[] }[]
      xAxis: { data: string[] }
    }
    expect(o.xAxis.data).toEqual(['0', '1'])
    expect(o.series.map((s) => s.name)).toEqual(BLOCK_WIDTHS.map((w) => w.label))
    expect(o.series[0].data).toEqual([75, 100])
    expect(o.series[1].data).toEqual([100, 50])
    expect(o.series[2].data).toEqual([100, 50])
    expect(keptPercent([0, 0])).toBe(100)
  })

  it('plots perplexity against parameters per method and rings the picked point', () => {
    const p = (id: string, paramsAfter: number, pplAfter: number) =>
      ({ id, paramsAfter, pplAfter, label: id }) as unknown as ResultPoint
    const o = structureSweepOption(
      [
        { method: 'slicegpt', points: [p('a', 100, 7), p('b', 200, 6)] },
        { method: 'drop_layers', points: [p('c', 150, 9)] },
      ],
      'b',
    ) as { series: { name: string; data: { value: number[]; id: string; symbolSize?: number }[] }[] }
    expect(o.series.map((s) => s.name)).toEqual(['slicegpt', 'drop_layers'])
    expect(o.series[0].data.map((d) => d.value)).toEqual([
      [100, 7],
      [200, 6],
    ])
    expect(o.series[0].data.filter((d) => d.symbolSize).map((d) => d.id)).toEqual(['b'])
  })
})
