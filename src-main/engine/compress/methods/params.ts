// Reading a method's params from a recipe: every error names the step and the field, e.g.
// "recipe step 1 (gptq): params.bits must be an integer in [2, 8] (got 9)".

import { WhittleError } from '../../errors'

export class ParamReader {
  private readonly seen = new Set<string>()

  constructor(private readonly raw: Record<string, unknown>, private readonly where: string) {}

  fail(field: string, problem: string): never {
    throw new WhittleError('validation', null, `${this.where}: params.${field} ${problem}`)
  }

  int(key: string, fallback: number, lo: number, hi: number): number {
    this.seen.add(key)
    const v = this.raw[key] ?? fallback
    if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) this.fail(key, `must be an integer in [${lo}, ${hi}] (got ${JSON.stringify(v)})`)
    return v
  }

  num(key: string, fallback: number, lo: number, hi: number): number {
    this.seen.add(key)
    const v = this.raw[key] ?? fallback
    if (typeof v !== 'number' || !Number.isFinite(v) || v < lo || v > hi) this.fail(key, `must be a number in [${lo}, ${hi}] (got ${JSON.stringify(v)})`)
    return v
  }

  bool(key: string, fallback: boolean): boolean {
    this.seen.add(key)
    const v = this.raw[key] ?? fallback
    if (typeof v !== 'boolean') this.fail(key, `must be true or false (got ${JSON.stringify(v)})`)
    return v
  }

  oneOf<T extends string>(key: string, fallback: T, options: readonly T[]): T {
    this.seen.add(key)
    const v = this.raw[key] ?? fallback
    if (typeof v !== 'string' || !options.includes(v as T)) this.fail(key, `must be one of ${options.join(', ')} (got ${JSON.stringify(v)})`)
    return v as T
  }

  /** A list of distinct non-negative integers that may be absent; returned sorted. */
  optIntList(key: string): number[] | null {
    this.seen.add(key)
    const v = this.raw[key]
    if (v === undefined) return null
    if (!Array.isArray(v) || v.length === 0 || !v.every((x) => Number.isInteger(x) && x >= 0)) this.fail(key, `must be a non-empty list of indices (got ${JSON.stringify(v)})`)
    return [...new Set(v as number[])].sort((a, b) => a - b)
  }

  /** The raw value of a structured param (the caller checks it); marks it as known. */
  take(key: string): unknown {
    this.seen.add(key)
    return this.raw[key]
  }

  /** A string that may be absent. */
  optString(key: string): string | undefined {
    this.seen.add(key)
    const v = this.raw[key]
    if (v === undefined) return undefined
    if (typeof v !== 'string') this.fail(key, `must be a string (got ${JSON.stringify(v)})`)
    return v
  }

  /** Group size: -1 (or 0) means per output channel. */
  groupSize(key = 'group_size', fallback = -1): number {
    const g = this.int(key, fallback, -1, 1 << 20)
    return g <= 0 ? -1 : g
  }

  /** Call last: unknown keys are typos, and typos must not silently fall back to defaults. */
  done(): void {
    for (const k of Object.keys(this.raw)) if (!this.seen.has(k)) this.fail(k, 'is not a parameter of this method')
  }
}
