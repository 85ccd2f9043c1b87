// ECharts, registered piece by piece so the bundle carries only what the views draw.

import { use, init, type ECharts } from 'echarts/core'
import { BarChart, HeatmapChart, LineChart, ScatterChart } from 'echarts/charts'
import {
  DataZoomInsideComponent,
  DataZoomSliderComponent,
  GridComponent,
  LegendComponent,
  MarkLineComponent,
  TooltipComponent,
  VisualMapContinuousComponent,
} from 'echarts/components'
import { CanvasRenderer } from 'echarts/renderers'

use([
  BarChart,
  HeatmapChart,
  LineChart,
  ScatterChart,
  GridComponent,
  LegendComponent,
  TooltipComponent,
  DataZoomInsideComponent,
  DataZoomSliderComponent,
  MarkLineComponent,
  VisualMapContinuousComponent,
  CanvasRenderer,
])

export function createChart(el: HTMLElement): ECharts {
  return init(el, undefined, { renderer: 'canvas' })
}

export type { ECharts }
