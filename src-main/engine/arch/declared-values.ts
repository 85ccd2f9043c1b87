// Reading geometry numbers out of config.json or GGUF metadata. A value that is present but unusable
// (negative, fractional, absurd, the wrong type) is the file's fault and becomes a WhittleError naming it;
// an absent key is fine, the adapter then derives the number from tensor shapes.

import { dirname, join } from 'node:path'
import { WhittleError, showValue, type ErrorCode } from '../errors'
import type { ModelFiles } from '../formats/types'

/** No real dimension, head count or layer count comes near this; larger ones are corruption. */
export const MAX_DECLARED_DIM = 1 << 30

/** A number as declared, with the key it came from so messages can quote it. */
export interface DeclaredValue {
  value: number
  key: string
}

/** Where config.json sits: next to the data files (HF folders and shard sets keep them together). */
export function configPath(model: ModelFiles): string {
  const first = model.files[0]
  return join(first ? dirname(first) : model.path, 'config.json')
}

/**
 * Typed access to one source of declared values. `code` is 'config' for config.json and 'format' for
 * GGUF metadata (there the metadata is part of the file's own format).
 */
export class DeclaredSource {
  constructor(
    readonly values: Record<string, unknown>,
    readonly file: string,
    readonly code: ErrorCode,
  ) {}

  fail(problem: string): WhittleError {
    return new WhittleError(this.code, this.file, problem)
  }

  /** The raw value, with JSON null treated as absent (HF writes `"n_inner": null` for "use the default"). */
  raw(key: string): unknown {
    const v = Object.hasOwn(this.values, key) ? this.values[key] : undefined
    return v === null ? undefined : v
  }

  private numeric(key: string): number | undefined {
    const v = this.raw(key)
    if (v === undefined) return undefined
    if (typeof v === 'bigint') {
      if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < -BigInt(Number.MAX_SAFE_INTEGER)) {
        throw this.fail(`${key} is ${v}, far beyond any real value`)
      }
      return Number(v)
    }
    if (typeof v !== 'number') throw this.fail(`${key} must be a number, found ${showValue(v)}`)
    if (!Number.isFinite(v)) throw this.fail(`${key} must be finite, found ${v}`)
    return v
  }

  /** The first present key of `keys`, which must hold a positive integer. */
  positiveInt(...keys: string[]): DeclaredValue | undefined {
    for (const key of keys) {
      const v = this.numeric(key)
      if (v === undefined) continue
      if (!Number.isInteger(v) || v <= 0) throw this.fail(`${key} must be a positive integer, found ${v}`)
      if (v > MAX_DECLARED_DIM) throw this.fail(`${key} is ${v}, far beyond any real model`)
      return { value: v, key }
    }
    return undefined
  }

  /** A list of positive integers (per-layer sizes), or undefined when absent. */
  positiveIntList(key: string): { values: number[]; key: string } | undefined {
    const v = this.raw(key)
    if (v === undefined) return undefined
    if (!Array.isArray(v) || v.length === 0)
      throw this.fail(`${key} must be a non-empty list of positive integers, found ${showValue(v)}`)
    // One entry per decoder layer: no real model comes near this many.
    if (v.length > 1 << 16) throw this.fail(`${key} lists ${v.length} values, far beyond any real model`)
    for (const x of v)
      if (typeof x !== 'number' || !Number.isInteger(x) || x <= 0 || x > MAX_DECLARED_DIM)
        throw this.fail(`${key} must hold positive integers, found ${showValue(x)}`)
    return { values: v as number[], key }
  }

  /** The first present key of `keys`, which must hold a positive finite number. */
  positiveNumber(...keys: string[]): number | null {
    for (const key of keys) {
      const v = this.numeric(key)
      if (v === undefined) continue
      if (v <= 0) throw this.fail(`${key} must be positive, found ${v}`)
      return v
    }
    return null
  }

  bool(key: string): boolean | undefined {
    const v = this.raw(key)
    if (v === undefined) return undefined
    if (typeof v !== 'boolean') throw this.fail(`${key} must be true or false, found ${showValue(v)}`)
    return v
  }

  /** A nested object such as `rope_parameters`, or undefined. */
  object(key: string): Record<string, unknown> | undefined {
    const v = this.raw(key)
    if (v === undefined) return undefined
    if (typeof v !== 'object' || Array.isArray(v)) throw this.fail(`${key} must be an object`)
    return v as Record<string, unknown>
  }
}

/**
 * Lenient reading for families Whittle does not know: a value that is missing or unusable gives undefined
 * instead of an error, since an unknown model must still open.
 */
export function lenientPositiveInt(values: Record<string, unknown>, ...keys: string[]): number | undefined {
  for (const key of keys) {
    let v = Object.hasOwn(values, key) ? values[key] : undefined
    if (typeof v === 'bigint' && v <= BigInt(MAX_DECLARED_DIM)) v = Number(v)
    if (typeof v === 'number' && Number.isInteger(v) && v > 0 && v <= MAX_DECLARED_DIM) return v
  }
  return undefined
}
