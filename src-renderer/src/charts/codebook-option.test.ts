import { describe, expect, it } from 'vitest'
import type { Codebook2dGrid } from '../lib/learned-grid'
import { CODEBOOK_SERIES, codebookOption } from './codebook-option'

interface Drawn {
  legend: { data: string[] }
  xAxis: { type: string }
  series: { type: string; name: string; data: [number, number][]; symbolSize: number; z: number }[]
}

describe('2-D codebook scatter', () => {
  // Pairs on a diagonal: correlated neighbours, which a square grid covers badly.
  const points: [number, number][] = [
    [-1, -1],
    [-0.9, -0.8],
    [0, 0.1],
    [0.1, 0],
    [0.9, 1],
    [1, 0.9],
  ]
  const grid: Codebook2dGrid = {
    kind: 'codebook2d',
    group: 0,
    centroids: [
      [-0.95, -0.9],
      [0.05, 0.05],
      [0.95, 0.95],
      [0, 0],
    ],
    points,
  }

  it('draws the pairs in grey under the highlighted codes, and the square grid with as many points', () => {
    const option = codebookOption(grid) as unknown as Drawn
    const byName = Object.fromEntries(option.series.map((s) => [s.name, s]))
    expect(option.series.every((s) => s.type === 'scatter')).toBe(true)
    expect(byName[CODEBOOK_SERIES.points].data).toEqual(points)
    expect(byName[CODEBOOK_SERIES.codes].data).toEqual(grid.centroids)
    // The codes stand out: larger and drawn on top of the pairs.
    expect(byName[CODEBOOK_SERIES.codes].symbolSize).toBeGreaterThan(byName[CODEBOOK_SERIES.points].symbolSize)
    expect(byName[CODEBOOK_SERIES.codes].z).toBeGreaterThan(byName[CODEBOOK_SERIES.points].z)
    // 4 codes: 2 levels per axis over the pairs' range.
    expect(byName[CODEBOOK_SERIES.uniform].data).toEqual([
      [-1, -1],
      [-1, 1],
      [1, -1],
      [1, 1],
    ])
    expect(option.legend.data).toEqual([CODEBOOK_SERIES.points, CODEBOOK_SERIES.codes, CODEBOOK_SERIES.uniform])
  })

  it('has no square grid to compare with when the code count is no square', () => {
    const option = codebookOption({ ...grid, centroids: grid.centroids.slice(0, 3) }) as unknown as Drawn
    expect(option.series.map((s) => s.name)).toEqual([CODEBOOK_SERIES.points, CODEBOOK_SERIES.codes])
    expect(option.legend.data).not.toContain(CODEBOOK_SERIES.uniform)
  })
})
