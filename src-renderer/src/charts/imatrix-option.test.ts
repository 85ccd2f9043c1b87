import { describe, expect, it } from 'vitest'
import type { ImatrixProfile, ImatrixTensorProfile } from '@contract/api'
import {
  channelRms,
  findImatrixTensor,
  imatrixChannelOption,
  imatrixLayers,
  imatrixOutliers,
  imatrixRoles,
  imatrixTensorForInput,
  imatrixThreshold,
  OUTLIER_FACTOR,
} from './imatrix-option'

function entry(layer: number | null, role: ImatrixTensorProfile['role'], meanSq: number[]): ImatrixTensorProfile {
  const group =
    role === 'q' || role === 'k' || role === 'v' ? 'qkv' : role === 'down' ? 'down' : role === 'o' ? 'o' : null
  return { name: `blk.${layer}.${role}`, layer, role, group, tensor: null, meanSq, count: 10 }
}

// RMS 1, 2, 1, 1, 9 (an outlier: 9 > 6 × median 1), and 1.
const q = entry(1, 'q', [1, 4, 1, 1, 81, 1])
const profile: ImatrixProfile = {
  path: '/m/imatrix.gguf',
  format: 'gguf',
  chunkCount: 4,
  chunkSize: 128,
  datasets: [],
  tensors: [
    entry(0, 'q', [1, 1]),
    entry(0, 'down', [4, 4]),
    q,
    entry(1, 'k', [1, 1, 1, 1, 1, 1]),
    entry(null, null, [1]),
  ],
}

describe('imatrix channel profile', () => {
  it('finds entries by layer and role, and the first one that weighs an input group', () => {
    expect(imatrixLayers(profile)).toEqual([0, 1])
    expect(imatrixRoles(profile, 1)).toEqual(['q', 'k'])
    expect(findImatrixTensor(profile, 1, 'q')).toBe(q)
    expect(findImatrixTensor(profile, 2, 'q')).toBeNull()
    expect(imatrixTensorForInput(profile, 1, 'qkv')).toBe(q)
    expect(imatrixTensorForInput(profile, 0, 'down')!.role).toBe('down')
    expect(imatrixTensorForInput(profile, 1, 'gate_up')).toBeNull()
  })

  it('draws √(mean x²) per channel, marks channels above 6 × the median, largest first', () => {
    expect(channelRms(q)).toEqual([1, 2, 1, 1, 9, 1])
    expect(channelRms(entry(0, 'o', [-1, NaN, 0]))).toEqual([0, 0, 0])
    expect(imatrixThreshold(q)).toBe(OUTLIER_FACTOR * 1)
    expect(imatrixOutliers(q)).toEqual([{ index: 4, rms: 9 }])
    const option = imatrixChannelOption(q) as {
      series: { name: string; data: (number | null)[]; markLine?: { data: { yAxis: number }[] } }[]
      yAxis: { max?: number }
      legend?: unknown
    }
    expect(option.series.map((s) => s.name)).toEqual(['imatrix', 'outliers'])
    expect(option.series[0].data).toEqual([1, 2, 1, 1, null, 1])
    expect(option.series[1].data).toEqual([null, null, null, null, 9, null])
    expect(option.series[0].markLine!.data[0].yAxis).toBe(6)
    // A channel already reaches above the line: ECharts picks the axis end.
    expect(option.yAxis.max).toBeUndefined()
    expect(option.legend).toBeUndefined()
  })

  it('overlays the activation capture of the same input, when it has as many channels', () => {
    const option = imatrixChannelOption(q, [4, 4, 4, 4, 4, 4]) as {
      series: { name: string; type: string; data: number[] }[]
      legend?: { data: string[] }
    }
    expect(option.series[2]).toMatchObject({ name: 'activation capture', type: 'line', data: [2, 2, 2, 2, 2, 2] })
    expect(option.legend!.data).toEqual(['imatrix', 'activation capture'])
    const other = imatrixChannelOption(q, [1, 2]) as { series: unknown[] }
    expect(other.series).toHaveLength(2)
  })

  it('keeps the threshold line on screen when no channel reaches it', () => {
    const flat = entry(0, 'o', [1, 1, 1, 1])
    const option = imatrixChannelOption(flat) as { yAxis: { max?: number } }
    expect(imatrixOutliers(flat)).toEqual([])
    expect(option.yAxis.max).toBeGreaterThanOrEqual(6)
  })
})
