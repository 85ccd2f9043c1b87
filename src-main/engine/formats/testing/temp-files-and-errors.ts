// Helpers shared by the format tests (not shipped code paths): temp folders, an assertion for the
// WhittleErrors that bad input must produce, and an encoder for f16 test data.

import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { expect } from 'vitest'
import { WhittleError, type ErrorCode } from '../../errors'

/** A fresh temp folder and a function that removes it. */
export function tempFolder(prefix = 'whittle-formats-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) }
}

/**
 * Asserts that `run` rejects with a WhittleError of `code` whose message names `file` and contains every
 * fragment in `mentions` (case-insensitive).
 */
export async function expectWhittleError(
  run: () => Promise<unknown>,
  code: ErrorCode,
  file: string | null,
  ...mentions: string[]
): Promise<WhittleError> {
  let caught: unknown = null
  try {
    await run()
  } catch (e) {
    caught = e
  }
  expect(caught, 'expected a WhittleError, but nothing was thrown').not.toBeNull()
  expect(caught, `expected a WhittleError, got ${String(caught)}`).toBeInstanceOf(WhittleError)
  const err = caught as WhittleError
  expect(err.code, err.message).toBe(code)
  if (file !== null) {
    expect(err.file).toBe(resolve(file))
    expect(err.message).toContain(resolve(file))
  }
  for (const m of mentions) expect(err.message.toLowerCase()).toContain(m.toLowerCase())
  return err
}

/** IEEE-754 binary16 bits of a value that binary16 represents exactly (test data only). */
export function f16Bits(x: number): number {
  if (Number.isNaN(x)) return 0x7e00
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0
  const a = Math.abs(x)
  if (a === Infinity) return sign | 0x7c00
  if (a === 0) return sign
  let e = Math.floor(Math.log2(a))
  if (e < -14) {
    const m = a / 2 ** -24
    if (!Number.isInteger(m)) throw new Error(`${x} is not exact in f16`)
    return sign | m
  }
  if (2 ** e > a) e-- // guard log2 rounding
  const m = (a / 2 ** e - 1) * 1024
  if (!Number.isInteger(m) || e > 15) throw new Error(`${x} is not exact in f16`)
  return sign | ((e + 15) << 10) | m
}
