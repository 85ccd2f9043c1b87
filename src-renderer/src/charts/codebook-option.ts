// A vector quantizer's 2-D codebook (GPTVQ, one group's) over a sample of the weight pairs it codes: the
// pairs in grey, the codebook's entries highlighted, and the square grid two uniform scalar quantizers
// with as many points in all would use (hollow), so the eye sees the codes follow the pairs' cloud where
// the square grid wastes points on its empty corners.

import type { Codebook2dGrid } from '../lib/learned-grid'
import { uniformProductGrid } from '../lib/learned-grid'
import { formatValue } from '../lib/format'
import { CHART_COLORS, MONO_FONT } from './palette'
import type { ChartOption } from './types'

export const CODEBOOK_SERIES = {
  points: 'weight pairs',
  codes: 'codebook',
  /** √K evenly spaced levels per axis: as many points as the codebook. */
  uniform: 'uniform grid',
} as const

/** Sampled pairs: pale, small, drawn first so the codes stay on top. */
const POINT_COLOR = '#adb5bd'

export function codebookOption(grid: Codebook2dGrid): ChartOption {
  const uniform = uniformProductGrid(grid.points, grid.centroids.length)
  const axis = (name: string) => ({
    type: 'value' as const,
    scale: true,
    name,
    nameLocation: 'middle' as const,
    nameGap: 30,
    // At the plot's edges: through (0, 0) the axes would cut the cloud of pairs.
    axisLine: { onZero: false, lineStyle: { color: CHART_COLORS.axis } },
    axisLabel: { formatter: (v: number) => formatValue(v, 3) },
    splitLine: { lineStyle: { color: CHART_COLORS.grid } },
  })
  return {
    animation: false,
    textStyle: { fontFamily: MONO_FONT, fontSize: 11, color: CHART_COLORS.text },
    grid: { left: 72, right: 16, top: 30, bottom: 48 },
    legend: {
      top: 0,
      right: 8,
      data: [CODEBOOK_SERIES.points, CODEBOOK_SERIES.codes, ...(uniform ? [CODEBOOK_SERIES.uniform] : [])],
    },
    tooltip: {
      trigger: 'item',
      formatter: (p: unknown) => {
        const { seriesName, value } = p as { seriesName?: string; value?: [number, number] }
        return value ? `${seriesName}<br/>(${formatValue(value[0])}, ${formatValue(value[1])})` : ''
      },
    },
    xAxis: axis('first weight of the pair'),
    yAxis: axis('second weight of the pair'),
    series: [
      {
        type: 'scatter',
        name: CODEBOOK_SERIES.points,
        data: grid.points.map(([x, y]) => [x, y]),
        symbolSize: 3,
        itemStyle: { color: POINT_COLOR, opacity: 0.6 },
        z: 1,
      },
      ...(uniform
        ? [
            {
              type: 'scatter' as const,
              name: CODEBOOK_SERIES.uniform,
              data: uniform,
              symbol: 'emptyCircle',
              symbolSize: 7,
              itemStyle: { color: CHART_COLORS.bar },
              z: 2,
            },
          ]
        : []),
      {
        type: 'scatter',
        name: CODEBOOK_SERIES.codes,
        data: grid.centroids.map(([x, y]) => [x, y]),
        symbolSize: 9,
        itemStyle: { color: CHART_COLORS.outlier, borderColor: '#fff', borderWidth: 1 },
        z: 3,
      },
    ],
  }
}
