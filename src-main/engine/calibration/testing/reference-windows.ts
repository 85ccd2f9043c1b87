// The calibration every reference run in ../shared used: windows of 256 tokens of tinystories_calib at
// the starts in reference/calib_starts.json (which reproduce GPTQ's sampler with seed 0).

import { referenceCalibrationStarts, referenceIds } from '../../testing/shared-data'
import { calibrationWindows } from '../windows'

/** The first `samples` of the reference runs' 128 calibration windows (explicit starts decide the count). */
export function referenceCalibrationWindows(samples = 128): Int32Array[] {
  return calibrationWindows(referenceIds('tinystories_calib'), {
    samples,
    seqlen: 256,
    seed: 0,
    starts: referenceCalibrationStarts().slice(0, samples),
  })
}
