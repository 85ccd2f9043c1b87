// Column names of the per-tensor result tables, declared once: the Compress and Prune tables, the CLI's
// table and the HTML report all print these, so one measure never goes by two names.

export const TENSOR_COLUMNS = {
  name: 'tensor',
  method: 'method',
  format: 'format',
  shape: 'shape',
  bitsPerWeight: 'bits / weight',
  sparsity: 'sparsity',
  pattern: 'N:M',
  mask: 'mask',
  relWeightError: 'rel. weight error',
  relOutputError: 'rel. output error',
} as const

/** What each error column measures, for tooltips and the report's footnote. */
export const TENSOR_COLUMN_HELP = {
  relWeightError: '‖W − Ŵ‖ / ‖W‖',
  relOutputError: '‖X(W − Ŵ)ᵀ‖ / ‖XWᵀ‖ on calibration inputs (— without calibration)',
} as const
