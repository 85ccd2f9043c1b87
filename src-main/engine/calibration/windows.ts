// Calibration windows: reproducible starts (the GPTQ sampler, seed 0 by default) or an explicit list.

import { WhittleError } from '../errors'
import { PythonRandom } from './python-random'

export interface CalibrationSpec {
  samples: number
  seqlen: number
  seed: number
  /** Explicit starts (e.g. ../shared/reference/calib_starts.json); overrides the sampler. */
  starts?: number[]
}

export const DEFAULT_CALIBRATION: CalibrationSpec = { samples: 128, seqlen: 256, seed: 0 }

/** random.seed(seed); for each sample: randint(0, N − seqlen − 1), as the GPTQ data loaders do. */
export function sampleStarts(
  nTokens: number,
  samples: number,
  seqlen: number,
  seed: number,
  file: string | null = null,
): number[] {
  if (nTokens - seqlen - 1 < 0)
    throw new WhittleError('validation', file, `calibration text has ${nTokens} tokens; a window needs ${seqlen + 1}`)
  const rng = new PythonRandom(seed)
  return Array.from({ length: samples }, () => rng.randint(0, nTokens - seqlen - 1))
}

/** `file` is the text the ids came from; errors about the text name it. */
export function calibrationWindows(ids: Int32Array, spec: CalibrationSpec, file: string | null = null): Int32Array[] {
  const { seqlen } = spec
  if (!Number.isInteger(seqlen) || seqlen < 2)
    throw new WhittleError('validation', null, `calibration seqlen must be an integer ≥ 2 (got ${seqlen})`)
  if (!Number.isInteger(spec.samples) || spec.samples < 1 || spec.samples > 1 << 16) {
    throw new WhittleError(
      'validation',
      null,
      `calibration samples must be an integer in [1, 65536] (got ${spec.samples})`,
    )
  }
  const starts = spec.starts ?? sampleStarts(ids.length, spec.samples, seqlen, spec.seed, file)
  return starts.map((s, i) => {
    if (!Number.isInteger(s) || s < 0 || s + seqlen > ids.length) {
      throw new WhittleError(
        'validation',
        file,
        `calibration start ${i} (${s}) does not fit a ${seqlen}-token window in ${ids.length} tokens`,
      )
    }
    return ids.subarray(s, s + seqlen)
  })
}
