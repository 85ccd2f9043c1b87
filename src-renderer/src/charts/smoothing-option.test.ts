import { describe, expect, it } from 'vitest'
import {
  findSmoothing,
  hardestSmoothing,
  logValues,
  nearestAlphaIndex,
  smoothingOption,
  smoothingRows,
} from './smoothing-option'
import { report, ALPHAS } from '../testing/activation-report'

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
      series: {
        name: string
        data: (number | null)[]
        markLine?: { data: { xAxis: number }[]; label: { formatter: string } }
      }[]
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
