import { describe, expect, it } from 'vitest'
import { formatBytes, formatCount, formatFraction, formatShape, formatValue } from './format'

describe('formatCount', () => {
  it('writes parameter counts the way model cards do', () => {
    expect(formatCount(260_032)).toBe('260.0K')
    expect(formatCount(1_100_048_384)).toBe('1.10B')
    expect(formatCount(6_738_415_616)).toBe('6.74B')
    expect(formatCount(124_439_808)).toBe('124.44M')
    expect(formatCount(999)).toBe('999')
    expect(formatCount(0)).toBe('0')
  })

  it('moves to the next unit instead of showing 1000 of the current one', () => {
    expect(formatCount(999_960)).toBe('1.00M')
    expect(formatCount(999_940)).toBe('999.9K')
    expect(formatCount(999_999_999)).toBe('1.00B')
  })
})

describe('formatBytes', () => {
  it('uses binary units, the one convention of the CLI, the UI and the report', () => {
    expect(formatBytes(512)).toBe('512 B')
    expect(formatBytes(1536)).toBe('1.50 KiB')
    expect(formatBytes(2_500_000)).toBe(`${(2_500_000 / 2 ** 20).toFixed(2)} MiB`)
    expect(formatBytes(2_200_000_000)).toBe(`${(2_200_000_000 / 2 ** 30).toFixed(2)} GiB`)
    // Never "1024.00 KiB": a value that rounds up to 1024 moves to the next unit.
    expect(formatBytes(1024 * 1024 - 1)).toBe('1.00 MiB')
  })
})

describe('formatValue', () => {
  it('keeps four significant digits and names non-finite values', () => {
    expect(formatValue(0.115234)).toBe('0.1152')
    expect(formatValue(-0.53519)).toBe('-0.5352')
    expect(formatValue(3.89412)).toBe('3.894')
    expect(formatValue(0)).toBe('0')
    expect(formatValue(Number.NaN)).toBe('NaN')
    expect(formatValue(Number.POSITIVE_INFINITY)).toBe('+Inf')
    expect(formatValue(Number.NEGATIVE_INFINITY)).toBe('-Inf')
  })

  it('switches to exponent form for very small and very large magnitudes', () => {
    expect(formatValue(1.2346e-5)).toBe('1.235e-5')
    expect(formatValue(-65504)).toBe('-65500')
    expect(formatValue(3.4e38)).toBe('3.400e+38')
  })
})

describe('small formatters', () => {
  it('formats fractions and shapes', () => {
    expect(formatFraction(0.1234)).toBe('12.34%')
    expect(formatShape([64, 172])).toBe('64×172')
    expect(formatShape([])).toBe('scalar')
  })
})
