// Number and size formatting for the UI: short, fixed-width-friendly strings for a dense display.

/** Parameter counts the way papers write them: 999, 260.0K, 12.35M, 1.10B. */
export function formatCount(n: number): string {
  if (!Number.isFinite(n)) return String(n)
  if (Math.abs(n) < 999.5) return String(Math.round(n))
  return withUnit(
    n,
    [
      [1e3, 'K', 1],
      [1e6, 'M', 2],
      [1e9, 'B', 2],
      [1e12, 'T', 2],
    ],
    '',
  )
}

type Unit = [scale: number, suffix: string, decimals: number]

/** The smallest unit in which the rounded value reads below 1000 (so never "1000.0K"). */
function withUnit(n: number, units: Unit[], separator: string): string {
  for (let i = 0; i < units.length; i++) {
    const [scale, suffix, decimals] = units[i]
    const shown = (n / scale).toFixed(decimals)
    if (Math.abs(Number(shown)) < 1000 || i === units.length - 1) return `${shown}${separator}${suffix}`
  }
  return String(n)
}

/** Sizes: the one convention shared with the CLI and the report (binary units). */
export { formatBytes } from '@contract/units'

/** A statistic: 4 significant digits, exponent form when very large or very small. */
export function formatValue(x: number, digits = 4): string {
  if (Number.isNaN(x)) return 'NaN'
  if (!Number.isFinite(x)) return x > 0 ? '+Inf' : '-Inf'
  if (x === 0) return '0'
  const abs = Math.abs(x)
  if (abs >= 1e5 || abs < 1e-3) return x.toExponential(digits - 1)
  return Number(x.toPrecision(digits)).toString()
}

/** 0.1234 -> "12.34%". */
export function formatFraction(f: number): string {
  if (!Number.isFinite(f)) return String(f)
  return `${(f * 100).toFixed(2)}%`
}

/** [64, 172] -> "64×172"; a scalar -> "scalar". */
export function formatShape(shape: readonly number[]): string {
  return shape.length === 0 ? 'scalar' : shape.join('×')
}

/** Integers with thin grouping, for exact counts next to their short form. */
export function formatInteger(n: number): string {
  return Math.round(n).toLocaleString('en-US')
}
