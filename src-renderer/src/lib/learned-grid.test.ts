import { describe, expect, it } from 'vitest'
import type { CompressedTensor, LearnedGrid } from '@contract/api'
import {
  centroidRowLabels,
  errorComparison,
  gridCaption,
  gridSummary,
  isTensorTable,
  learnedGridOf,
  salientShade,
  nearestCodeError,
  nearestLevelError,
  uniformLevels,
  uniformLike,
  uniformProductGrid,
  type CentroidsGrid,
} from './learned-grid'

const squeeze: CentroidsGrid = {
  kind: 'centroids',
  rows: [
    { row: 0, centroids: [-0.5, -0.1, 0.1, 0.5] },
    { row: 16, centroids: [-0.4, -0.05, 0.05, 0.4] },
  ],
  outlierFraction: 0.0045,
}
const gobo: CentroidsGrid = { kind: 'centroids', rows: [{ row: -1, centroids: [-1, 0, 1] }], outlierFraction: 0.01 }

function tensor(step: number, method: string, grid?: LearnedGrid): CompressedTensor {
  return {
    name: 'model.layers.0.mlp.up_proj',
    layer: 0,
    role: 'up',
    step,
    method,
    format: 'x',
    shape: [4, 4],
    bitsPerWeight: 3,
    relWeightError: 0.1,
    relOutputError: null,
    sparsity: 0,
    ...(grid ? { grid } : {}),
  }
}

describe('learned grids', () => {
  it("finds the tensor's last outcome, and only when that one learned a grid", () => {
    expect(learnedGridOf([tensor(0, 'squeezellm', squeeze)], 'model.layers.0.mlp.up_proj')?.grid).toBe(squeeze)
    expect(learnedGridOf([tensor(0, 'squeezellm', squeeze)], 'model.layers.1.mlp.up_proj')).toBeNull()
    // A later step replaced the weights: the old grid no longer describes them.
    expect(learnedGridOf([tensor(0, 'squeezellm', squeeze), tensor(1, 'rtn')], 'model.layers.0.mlp.up_proj')).toBeNull()
    expect(learnedGridOf([tensor(0, 'rtn'), tensor(1, 'gobo', gobo)], 'model.layers.0.mlp.up_proj')?.method).toBe(
      'gobo',
    )
  })

  it('spaces uniform levels evenly between both ends', () => {
    expect(uniformLevels(-1, 1, 5)).toEqual([-1, -0.5, 0, 0.5, 1])
    expect(uniformLevels(2, 3, 1)).toEqual([2])
    expect(uniformLevels(0, 1, 0)).toEqual([])
    const u = uniformLike([0.5, -0.1, -0.5, 0.1])
    ;[-0.5, -1 / 6, 1 / 6, 0.5].forEach((x, i) => expect(u[i]).toBeCloseTo(x, 12))
  })

  it('measures how far weights lie from their nearest level', () => {
    // Two bins of 6 at ±0.25 and two of 1 at ±0.75: levels at ±0.25 miss only the tails (0.5² each).
    expect(nearestLevelError([-0.75, -0.25, 0.25, 0.75], [1, 6, 6, 1], [-0.25, 0.25])).toBeCloseTo((2 * 0.25) / 14, 12)
    expect(nearestLevelError([1, 2], [0, 0], [0])).toBeNaN()
    expect(
      nearestCodeError(
        [
          [0, 0],
          [1, 1],
        ],
        [
          [0, 0],
          [1, 0],
        ],
      ),
    ).toBeCloseTo(0.5, 12)
    expect(nearestCodeError([], [[0, 0]])).toBeNaN()
  })

  it('builds the square grid of as many points over the pairs, or none when the count is no square', () => {
    const pts: [number, number][] = [
      [0, -2],
      [2, 2],
      [1, 0],
    ]
    expect(uniformProductGrid(pts, 9)).toEqual([
      [0, -2],
      [0, 0],
      [0, 2],
      [1, -2],
      [1, 0],
      [1, 2],
      [2, -2],
      [2, 0],
      [2, 2],
    ])
    expect(uniformProductGrid(pts, 8)).toBeNull()
    expect(uniformProductGrid([], 4)).toBeNull()
  })

  it("labels SqueezeLLM's sampled rows and GOBO's one table", () => {
    expect(isTensorTable(squeeze)).toBe(false)
    expect(centroidRowLabels(squeeze)).toEqual(['row 0', 'row 16'])
    expect(isTensorTable(gobo)).toBe(true)
    expect(centroidRowLabels(gobo)).toEqual(['whole tensor'])
  })

  it('sums each picture up in one line, with a caption saying why a learned grid helps', () => {
    expect(gridSummary(squeeze)).toBe("4 centroids · 2 sampled rows' tables · 0.45% of weights kept in full precision")
    expect(gridSummary(gobo)).toBe(
      '3 centroids · one table for the whole tensor · 1.00% of weights kept in full precision',
    )
    expect(
      gridSummary({
        kind: 'codebook2d',
        group: 2,
        centroids: [[0, 0]],
        points: [
          [1, 1],
          [2, 2],
        ],
      }),
    ).toBe("1 codes in group 2's codebook · 2 sampled weight pairs")
    expect(gridSummary({ kind: 'salient', rows: 2, cols: 3, density: [0, 0, 0, 0, 0, 1], salientFraction: 0.1 })).toBe(
      '10.00% of weights salient (8 bits) · 2×3 cells',
    )
    for (const g of [squeeze, gobo]) expect(gridCaption(g)).toMatch(/uniform grid/)
    expect(gridCaption({ kind: 'codebook2d', group: 0, centroids: [], points: [] })).toMatch(/2-D codebook/)
    expect(gridCaption({ kind: 'salient', rows: 1, cols: 1, density: [0], salientFraction: 0 })).toMatch(/8 bits/)
  })

  it('shades the salient mask against its densest cell', () => {
    const shade = salientShade({
      kind: 'salient',
      rows: 1,
      cols: 4,
      density: [0, 0.05, 0.2, 0.1],
      salientFraction: 0.0875,
    })
    expect(shade).toEqual({ rows: 1, cols: 4, density: [0, 0.25, 1, 0.5], peak: 0.2 })
    expect(salientShade({ kind: 'salient', rows: 1, cols: 2, density: [0, 0], salientFraction: 0 }).density).toEqual([
      0, 0,
    ])
  })

  it('compares the learned and uniform errors, saying how many times less', () => {
    expect(errorComparison(0.001, 0.004)).toBe(
      'mean squared distance to the nearest level: learned 0.001, uniform 0.004 (4.0× less)',
    )
    expect(errorComparison(2e-4, 5e-4, 'code')).toBe(
      'mean squared distance to the nearest code: learned 2.00e-4, uniform 5.00e-4 (2.5× less)',
    )
    expect(errorComparison(NaN, 1)).toBeNull()
  })
})
