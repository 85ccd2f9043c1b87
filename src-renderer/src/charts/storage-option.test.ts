import { describe, expect, it } from 'vitest'
import type { GgufBlockStorage, PackedLinearStorage } from '@contract/api'
import { codeCountsOption, storageChartOption, storageCharts, storageFacts, storagePartRows } from './storage-option'

const gptq: PackedLinearStorage = {
  kind: 'packed-linear',
  scheme: 'gptq',
  label: 'GPTQ 4-bit g128 act-order, sym',
  bits: 4,
  groupSize: 128,
  groups: 2,
  actOrder: true,
  symmetric: true,
  parts: [
    { name: 'm.qweight', role: 'codes', dtype: 'I32', shape: [32, 64], byteLength: 8192 },
    { name: 'm.scales', role: 'scales', dtype: 'F16', shape: [2, 64], byteLength: 256 },
    { name: 'm.qzeros', role: 'zeros', dtype: 'I32', shape: [2, 8], byteLength: 64 },
    { name: 'm.g_idx', role: 'g_idx', dtype: 'I32', shape: [256], byteLength: 1024 },
  ],
  bitsPerWeight: 4.59375,
  codes: [0, 3, 5, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 1],
  zeros: [0, 0, 0, 0, 0, 0, 0, 0, 128, 0, 0, 0, 0, 0, 0, 0],
  scales: { lo: 0.001, hi: 0.01, counts: [4, 0, 2], below: 0, above: 0 },
}

const q4k: GgufBlockStorage = {
  kind: 'gguf-blocks',
  type: 'Q4_K',
  label: 'Q4_K · 256 per block · 144 B',
  blockElements: 256,
  blockBytes: 144,
  blocks: 768,
  bitsPerWeight: 4.5,
  scales: [
    { field: 'd', histogram: { lo: 0, hi: 1, counts: [1, 767], below: 0, above: 0 } },
    { field: 'dmin', histogram: { lo: 0, hi: 1, counts: [700, 68], below: 0, above: 0 } },
  ],
}

describe('storage panel options', () => {
  it('states bits, group size, act-order and symmetry of a packed Linear', () => {
    expect(Object.fromEntries(storageFacts(gptq))).toMatchObject({
      scheme: 'GPTQ',
      bits: '4',
      'group size': '128',
      'act-order': 'yes',
      symmetric: 'yes',
    })
    const perChannel = { ...gptq, groupSize: -1, actOrder: false, symmetric: false }
    expect(Object.fromEntries(storageFacts(perChannel))).toMatchObject({
      'group size': 'per channel',
      'act-order': 'no',
      symmetric: 'no',
    })
  })

  it('lists every stored part as a tensor of its own', () => {
    const rows = storagePartRows(gptq)
    expect(rows.map((r) => r.slice(0, 3))).toEqual([
      ['m.qweight', 'codes', 'I32'],
      ['m.scales', 'scales', 'F16'],
      ['m.qzeros', 'zeros', 'I32'],
      ['m.g_idx', 'g_idx', 'I32'],
    ])
    expect(storagePartRows(q4k)).toEqual([])
  })

  it('charts codes, scales and zeros of a packed Linear; zeros only when stored', () => {
    expect(storageCharts(gptq).map((c) => [c.id, c.kind])).toEqual([
      ['codes', 'codes'],
      ['scales', 'values'],
      ['zeros', 'codes'],
    ])
    expect(storageCharts({ ...gptq, zeros: null }).map((c) => c.id)).toEqual(['codes', 'scales'])
  })

  it('one bar per integer code, labelled by the code, empty codes dropped on a log axis', () => {
    const option = codeCountsOption(gptq.codes, false) as {
      xAxis: { data: string[]; name: string }
      series: { data: (number | null)[] }[]
    }
    expect(option.xAxis.data).toEqual(Array.from({ length: 16 }, (_, q) => String(q)))
    expect(option.xAxis.name).toBe('code')
    expect(option.series[0].data).toEqual(gptq.codes)
    const log = codeCountsOption(gptq.codes, true) as { yAxis: { type: string }; series: { data: (number | null)[] }[] }
    expect(log.yAxis.type).toBe('log')
    expect(log.series[0].data).toEqual(gptq.codes.map((c) => (c === 0 ? null : c)))
  })

  it('GGUF blocks: type facts and one histogram per scale field', () => {
    expect(Object.fromEntries(storageFacts(q4k))).toMatchObject({ type: 'Q4_K', 'block size': '256 weights' })
    const charts = storageCharts(q4k)
    expect(charts.map((c) => c.id)).toEqual(['block-d', 'block-dmin'])
    const option = storageChartOption(charts[1], false) as { series: { data: number[] }[] }
    expect(option.series[0].data).toEqual([700, 68])
  })
})
