// Chart colours. Canvas cannot read CSS variables, so the chart palette lives here, chosen to match
// the neutral theme in styles.css.

export const CHART_COLORS = {
  bar: '#4a6fa5',
  outlier: '#d9480f',
  markLine: '#495057',
  axis: '#868e96',
  text: '#343a40',
  grid: '#e9ecef',
  /** |w| heatmap, low to high: pale, through the bar blue, to the outlier colours at the top. */
  heat: ['#f8f9fa', '#a5c0e0', '#4a6fa5', '#e8590c', '#a61e4d'],
  /** Outlier-score heatmap, low to high: one warm hue, so a hot cell cannot be mistaken for a cold one. */
  score: ['#fff9db', '#ffd8a8', '#ffa94d', '#e8590c', '#a61e4d'],
  /** Signed values, negative to positive through a neutral zero: blue, pale grey, red. */
  diverging: ['#1c4f8a', '#74a0d4', '#f1f3f5', '#f0926c', '#a61e1e'],
  /** Two measures drawn together (activation vs weight range): the bar blue and a contrasting orange. */
  pair: ['#4a6fa5', '#d9480f'],
  /** Bars below zero (a block or head whose removal helps). */
  negative: '#2f9e44',
} as const

export const MONO_FONT = 'ui-monospace, SFMono-Regular, Menlo, Consolas, monospace'
