// One printed row of the benchmark table; each case process prints these as JSON lines on stdout.

export interface BenchRow {
  case: string
  variant: string
  measure: string
  value: string
  /** e.g. "4.1x vs TS scalar" */
  ratio?: string
  peakRss?: string
}

export function emit(row: BenchRow): void {
  process.stdout.write(JSON.stringify(row) + '\n')
}

export function peakRss(): string {
  return `${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MB`
}

export function gbps(bytes: number, seconds: number): string {
  return `${(bytes / seconds / 1e9).toFixed(2)} GB/s`
}

/** Best of n runs: the least disturbed measurement of a deterministic computation. */
export async function bestOf(n: number, fn: () => Promise<void> | void): Promise<number> {
  let best = Infinity
  for (let i = 0; i < n; i++) {
    const t0 = performance.now()
    await fn()
    best = Math.min(best, (performance.now() - t0) / 1000)
  }
  return best
}
