import { describe, expect, it } from 'vitest'
import type { ActivationReport } from '@contract/api'
import {
  activationChannelOption,
  activationLayers,
  activationOutliers,
  findInput,
  mostOutlierInput,
} from './activation-option'
import { input, report } from '../testing/activation-report'

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
    expect(activationOutliers(i)).toEqual([
      { index: 3, absmax: 8 },
      { index: 0, absmax: 7 },
    ])
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

  it("the tooltip shows a channel's absmax, mean |x| and its importance-matrix value (mean x²)", () => {
    const i = { ...input(0, 'qkv', [7, 1]), meanAbs: [0.5, 0.25], meanSq: [3, 0.125] }
    const option = activationChannelOption(i, 6) as { tooltip: { formatter: (p: unknown) => string } }
    const text = option.tooltip.formatter([{ dataIndex: 0 }])
    expect(text).toContain('channel 0 (outlier)')
    expect(text).toMatch(/mean \|x\| 0\.5/)
    expect(text).toMatch(/mean x² \(imatrix\) 3/)
    expect(option.tooltip.formatter([{ dataIndex: 1 }])).toMatch(/mean x² \(imatrix\) 0\.125/)
  })

  it('stretches the axis to the threshold when every channel is below it', () => {
    const quiet = input(0, 'o', [1, 2, 1.5])
    const option = activationChannelOption(quiet, 6) as { yAxis: { max?: number } }
    expect(option.yAxis.max).toBeGreaterThanOrEqual(6)
  })
})
