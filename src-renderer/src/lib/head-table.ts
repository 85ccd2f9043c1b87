// The heads table: every head with both importance measures and its rank under each, sortable by any
// column, and the rank correlation between the measures as one readable line.

import type { HeadImportance } from '@contract/api'

export interface HeadRow {
  layer: number
  head: number
  /** Mean NLL increase when the head is zeroed. */
  ablation: number
  /** Mean L2 norm of the head's output through o_proj. */
  proxy: number
  /** 1 = most important by ablation. */
  ablationRank: number
  /** 1 = most important by the proxy. */
  proxyRank: number
}

export type HeadSortKey = keyof HeadRow

/**
 * Rank 1 for the largest value. Ties share the best rank of their run (1, 2, 2, 4), the way a
 * leaderboard reads; non-finite values rank after every finite one.
 */
export function descendingRanks(values: readonly number[]): number[] {
  const key = (v: number): number => (Number.isFinite(v) ? v : -Infinity)
  const order = values.map((_, i) => i).sort((a, b) => key(values[b]) - key(values[a]) || a - b)
  const ranks = new Array<number>(values.length)
  order.forEach((index, position) => {
    const previous = order[position - 1]
    ranks[index] = position > 0 && key(values[previous]) === key(values[index]) ? ranks[previous] : position + 1
  })
  return ranks
}

export function headRows(importance: HeadImportance): HeadRow[] {
  const rows: Omit<HeadRow, 'ablationRank' | 'proxyRank'>[] = []
  importance.ablation.forEach((row, layer) =>
    row.forEach((ablation, head) => {
      rows.push({ layer, head, ablation, proxy: importance.proxy[layer]?.[head] ?? Number.NaN })
    }),
  )
  const ablationRanks = descendingRanks(rows.map((r) => r.ablation))
  const proxyRanks = descendingRanks(rows.map((r) => r.proxy))
  return rows.map((r, i) => ({ ...r, ablationRank: ablationRanks[i], proxyRank: proxyRanks[i] }))
}

/** A sorted copy; equal keys keep model order (layer, then head). Non-finite values sort last. */
export function sortHeadRows(rows: readonly HeadRow[], key: HeadSortKey, descending: boolean): HeadRow[] {
  const sign = descending ? -1 : 1
  const finite = (v: number): boolean => Number.isFinite(v)
  return [...rows].sort((a, b) => {
    const x = a[key]
    const y = b[key]
    if (finite(x) !== finite(y)) return finite(x) ? -1 : 1
    const byKey = finite(x) ? sign * (x - y) : 0
    return byKey || a.layer - b.layer || a.head - b.head
  })
}

/** The sort direction a column starts with: values (importance) from the top, indices and ranks from 1. */
export function defaultDescending(key: HeadSortKey): boolean {
  return key === 'ablation' || key === 'proxy'
}

export function formatCorrelation(rho: number): string {
  return Number.isFinite(rho) ? `Spearman ρ = ${rho.toFixed(2)}` : 'Spearman ρ undefined (a measure is constant)'
}
