// Text output helpers for the CLI: aligned tables, human sizes, a progress line on stderr, warnings.

import type { LoadedModel } from '../engine/model/loaded-model'

/** Windows longer than the model was built for run, but positions past its context are extrapolation. */
export function warnIfBeyondContext(
  model: LoadedModel,
  seqlen: number,
  out: NodeJS.WritableStream = process.stderr,
): void {
  const max = model.arch.maxPositions
  if (max !== null && seqlen > max) {
    out.write(
      `whittle: warning: --seqlen ${seqlen} exceeds the model's max_position_embeddings (${max}); positions past ${max} are extrapolated\n`,
    )
  }
}

export { formatBytes } from '../contract/units'

export function formatCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}B`
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}K`
  return String(n)
}

export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)))
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => c.padEnd(widths[i]))
      .join('  ')
      .trimEnd()
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n') + '\n'
}

/** A single rewritten line on a TTY; occasional plain lines otherwise (CI logs). */
export function progressLine(stream: NodeJS.WriteStream): {
  update: (f: number, msg: string) => void
  done: (msg: string) => void
} {
  let last = 0
  return {
    update(fraction, message) {
      const now = Date.now()
      if (now - last < (stream.isTTY ? 100 : 2000)) return
      last = now
      const text = `${(fraction * 100).toFixed(0).padStart(3)}% ${message}`
      if (stream.isTTY)
        stream.write(`\r${text.slice(0, (stream.columns ?? 100) - 1).padEnd((stream.columns ?? 100) - 1)}`)
      else stream.write(text + '\n')
    },
    done(message) {
      stream.write(stream.isTTY ? `\r${message.padEnd((stream.columns ?? 100) - 1)}\n` : message + '\n')
    },
  }
}
