// Where ../shared is (the reference data beside a checkout) and how tests skip without it.

import { existsSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..')
export const sharedDir = path.resolve(repoRoot, '../shared')
export const hasShared = existsSync(path.join(sharedDir, 'reference', 'reference.json'))
export const SKIP_SHARED = '../shared is absent (reference models, texts and numbers live there); skipping'

if (!hasShared) console.warn(`whittle tests: ${SKIP_SHARED}`)

export function shared(...parts: string[]): string {
  return path.join(sharedDir, ...parts)
}

/** Token ids of a reference text (int32 LE, BOS first). */
export function referenceIds(name: 'tinystories_eval' | 'tinystories_calib' | 'wikitext2_test'): Int32Array {
  const buf = readFileSync(shared('reference', 'tokens', `${name}.ids.bin`))
  return new Int32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4).slice()
}

interface ReferenceRun {
  name: string
  ppl: Record<string, Record<string, { ppl: number; mean_nll: number; windows: number }>>
}

export function referenceRun(name: string): ReferenceRun {
  const ref = JSON.parse(readFileSync(shared('reference', 'reference.json'), 'utf8')) as { runs: ReferenceRun[] }
  const run = ref.runs.find((r) => r.name === name)
  if (!run) throw new Error(`reference.json has no run named ${name}`)
  return run
}

/** The 128 calibration windows every reference run used (calib_starts.json over the calibration ids). */
export function referenceCalibrationStarts(): number[] {
  const doc = JSON.parse(readFileSync(shared('reference', 'calib_starts.json'), 'utf8')) as
    { starts: number[] } | number[]
  return Array.isArray(doc) ? doc : doc.starts
}
