// Reading a method's params from a recipe, validated by the method's declared spec (names, types,
// defaults, ranges and choices live in the spec, contract/method-params.ts; the method only says which
// one it reads). Every error names the step, the method and the field, e.g.
// "recipe step 1 (gptq): params.bits must be an integer in [2, 8] (got 9)".

import type { ParamSpec, ParamType } from '../../../contract/method-params'
import { WhittleError } from '../../errors'

export class ParamReader {
  private readonly seen = new Set<string>()

  constructor(
    private readonly raw: Record<string, unknown>,
    private readonly where: string,
    private readonly specs: readonly ParamSpec[],
  ) {}

  fail(field: string, problem: string): never {
    throw new WhittleError('validation', null, `${this.where}: params.${field} ${problem}`)
  }

  /** Whether the recipe gave this parameter (for rules that depend on what was written). */
  given(key: string): boolean {
    return this.raw[key] !== undefined
  }

  /** The spec of `key`, which must be of `type`: a method reading a parameter it did not declare is a bug. */
  private spec<T extends ParamType>(key: string, type: T): Extract<ParamSpec, { type: T }> {
    this.seen.add(key)
    const s = this.specs.find((p) => p.name === key)
    // A programming error (the method and its spec disagree), not bad input: no WhittleError code fits.
    if (!s || s.type !== type)
      throw new Error(
        `${this.where}: the method reads params.${key} as ${type}, but its spec ${s ? `declares ${s.type}` : 'lacks it'}`,
      )
    return s as Extract<ParamSpec, { type: T }>
  }

  /** An integer within the spec's range; `fallback` replaces the spec's default where it depends on other params. */
  int(key: string, fallback?: number): number {
    const v = this.optInt(key)
    const out = this.raw[key] === undefined || this.raw[key] === null ? (fallback ?? v) : v
    if (out === null) this.fail(key, 'is required')
    return out
  }

  /** An integer within the spec's range, or null when absent and the spec has no default. */
  optInt(key: string): number | null {
    const s = this.spec(key, 'int')
    const v = this.raw[key]
    if (v === undefined || v === null) return s.default
    if (typeof v !== 'number' || !Number.isInteger(v) || v < s.min || v > s.max)
      this.fail(key, `must be an integer in [${s.min}, ${s.max}] (got ${JSON.stringify(v)})`)
    return v
  }

  /** A number within the spec's range; `fallback` replaces the spec's default where it depends on other params. */
  num(key: string, fallback?: number): number {
    const s = this.spec(key, 'number')
    const v = this.raw[key] ?? fallback ?? s.default
    if (v === null) this.fail(key, 'is required')
    if (typeof v !== 'number' || !Number.isFinite(v) || v < s.min || v > s.max)
      this.fail(key, `must be a number in [${s.min}, ${s.max}] (got ${JSON.stringify(v)})`)
    return v
  }

  /** A number within the spec's range, or null when absent and the spec has no default. */
  optNum(key: string): number | null {
    if (this.raw[key] === undefined || this.raw[key] === null) return this.spec(key, 'number').default
    return this.num(key)
  }

  bool(key: string): boolean {
    const s = this.spec(key, 'bool')
    const v = this.raw[key] ?? s.default
    if (typeof v !== 'boolean') this.fail(key, `must be true or false (got ${JSON.stringify(v)})`)
    return v
  }

  /** One of the spec's choices; T narrows the result where the caller has a union type for them. */
  oneOf<T extends string = string>(key: string): T {
    const s = this.spec(key, 'choice')
    const v = this.raw[key] ?? s.default
    if (typeof v !== 'string' || !s.choices.includes(v))
      this.fail(key, `must be one of ${s.choices.join(', ')} (got ${JSON.stringify(v)})`)
    return v as T
  }

  /** A list of distinct non-negative integers that may be absent; returned sorted. */
  optIntList(key: string): number[] | null {
    this.spec(key, 'index_list')
    const v = this.raw[key]
    if (v === undefined) return null
    if (!Array.isArray(v) || v.length === 0 || !v.every((x) => Number.isInteger(x) && x >= 0))
      this.fail(key, `must be a non-empty list of indices (got ${JSON.stringify(v)})`)
    return [...new Set(v as number[])].sort((a, b) => a - b)
  }

  /** The raw value of a structured param (index_map or object; the caller checks its inside). */
  take(key: string): unknown {
    this.seen.add(key)
    const s = this.specs.find((p) => p.name === key)
    if (!s || (s.type !== 'index_map' && s.type !== 'object'))
      throw new Error(
        `${this.where}: the method takes params.${key} raw, but its spec ${s ? `declares ${s.type}` : 'lacks it'}`,
      )
    return this.raw[key]
  }

  /** A nested mapping's reader, validated by the object spec's fields; null when absent. */
  nested(key: string, example: string): ParamReader | null {
    const s = this.spec(key, 'object')
    const v = this.raw[key]
    if (v === undefined) return null
    if (typeof v !== 'object' || v === null || Array.isArray(v)) this.fail(key, `must be a mapping, e.g. ${example}`)
    return new ParamReader(v as Record<string, unknown>, `${this.where} ${key}`, s.fields)
  }

  /** A string that may be absent (the spec's default, often none). */
  optString(key: string): string | undefined {
    const s = this.spec(key, 'string')
    const v = this.raw[key]
    if (v === undefined) return s.default ?? undefined
    if (typeof v !== 'string') this.fail(key, `must be a string (got ${JSON.stringify(v)})`)
    return v
  }

  /** Group size: -1 (or 0) means per output channel. */
  groupSize(key = 'group_size'): number {
    const g = this.int(key)
    return g <= 0 ? -1 : g
  }

  /** Call last: unknown keys are typos, and typos must not silently fall back to defaults. */
  done(): void {
    for (const k of Object.keys(this.raw))
      if (!this.seen.has(k) || !this.specs.some((p) => p.name === k)) this.fail(k, 'is not a parameter of this method')
  }
}
