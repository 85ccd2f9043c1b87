import { describe, expect, it } from 'vitest'
import { layerBarOption, layerBars } from './layers-option'
import { CHART_COLORS } from './palette'

describe('layer bars', () => {
  it('draws one bar per block, negative ones in their own colour, gaps for non-finite values', () => {
    const bars = layerBars([0.5, -0.2, Number.NaN, 0])
    expect(bars.map((b) => b.value)).toEqual([0.5, -0.2, null, 0])
    expect(bars[1].itemStyle?.color).toBe(CHART_COLORS.negative)
    expect(bars[0].itemStyle).toBeUndefined()
    expect(bars[3].itemStyle).toBeUndefined()
  })

  it('labels blocks from 0 and names the measure', () => {
    const option = layerBarOption([2.4, 1.3, 0.85], { name: 'ΔNLL', axisName: 'ΔNLL' }) as {
      xAxis: { data: string[] }
      yAxis: { name: string }
      series: { name: string; data: { value: number | null }[] }[]
    }
    expect(option.xAxis.data).toEqual(['0', '1', '2'])
    expect(option.yAxis.name).toBe('ΔNLL')
    expect(option.series[0].data.map((d) => d.value)).toEqual([2.4, 1.3, 0.85])
  })
})
