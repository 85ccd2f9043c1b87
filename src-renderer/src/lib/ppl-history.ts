// Perplexity runs of this session, kept across models so a compressed model can be compared with its
// original. Two runs are comparable only when they scored the same windows of the same text: same
// file, same seqlen, same number of windows, same protocol.

import type { PerplexityProtocol } from '@contract/api'

export interface PerplexityRun {
  id: number
  modelName: string
  modelPath: string
  text: string
  seqlen: number
  protocol: PerplexityProtocol
  windows: number
  tokens: number
  ppl: number
  meanNll: number
}

export interface HistoryRow {
  run: PerplexityRun
  /** The earliest comparable run before this one, or null when this run is the first of its kind. */
  baseline: PerplexityRun | null
  /** ppl relative to the baseline's, e.g. 0.031 for +3.1 %; null without a baseline. */
  change: number | null
}

export function comparable(a: PerplexityRun, b: PerplexityRun): boolean {
  return a.text === b.text && a.seqlen === b.seqlen && a.windows === b.windows && a.protocol === b.protocol
}

/** Runs in the order given (oldest first), each with its change against the first comparable run. */
export function historyRows(runs: readonly PerplexityRun[]): HistoryRow[] {
  return runs.map((run, i) => {
    const baseline = runs.slice(0, i).find((r) => comparable(r, run)) ?? null
    const change = baseline && baseline.ppl > 0 && Number.isFinite(baseline.ppl) ? run.ppl / baseline.ppl - 1 : null
    return { run, baseline, change }
  })
}

/** "+3.10 %", "−0.42 %", "±0 %". */
export function formatChange(change: number): string {
  if (!Number.isFinite(change)) return String(change)
  const pct = change * 100
  if (Math.abs(pct) < 0.005) return '±0 %'
  return `${pct > 0 ? '+' : '−'}${Math.abs(pct).toFixed(2)} %`
}
