// The per-format totals of a fuzz run and the Markdown table the README carries.

import type { FormatName } from './formats'

export interface FormatTotals {
  format: FormatName
  cases: number
  ok: number
  typed: number
  untyped: number
  hangs: number
  bigAllocations: number
  /** Largest single buffer any case asked for (bytes). */
  largestAllocation: number
  peakRss: number
  seconds: number
  untypedSamples: Map<string, number>
  skipped: string | null
}

function mb(bytes: number): string {
  return `${(bytes / (1 << 20)).toFixed(bytes < 10 << 20 ? 1 : 0)} MB`
}

export function formatTable(rows: FormatTotals[], seed: string): string {
  const header = [
    'format',
    'cases',
    'ok',
    'typed',
    'untyped',
    'hangs',
    'big allocations',
    'largest buffer',
    'peak RSS',
    'time',
  ]
  const body = rows.map((r) =>
    r.skipped
      ? [r.format, 'skipped', '', '', '', '', '', '', '', r.skipped]
      : [
          r.format,
          r.cases.toLocaleString('en-US'),
          r.ok.toLocaleString('en-US'),
          r.typed.toLocaleString('en-US'),
          String(r.untyped),
          String(r.hangs),
          String(r.bigAllocations),
          mb(r.largestAllocation),
          mb(r.peakRss),
          `${Math.round(r.seconds)} s`,
        ],
  )
  const line = (c: string[]): string => `| ${c.join(' | ')} |`
  return [`fuzz seed ${seed}`, '', line(header), `|${header.map(() => '---').join('|')}|`, ...body.map(line)].join('\n')
}
