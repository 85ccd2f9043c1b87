// GOBO (Zadeh et al. 2020): per tensor, the weights are modelled as one Gaussian. Those further than
// `threshold` standard deviations from the mean are outliers and stay in fp32; the Gaussian "body"
// goes to 2^bits centroids (one table for the whole tensor) by 1-D k-means (quant/kmeans.ts),
// started at the fitted Gaussian's quantiles μ + σ·Φ⁻¹((j + 1/2)/2^bits), clipped to the body's range.
// (GOBO's own loop stops when the L1 error stops falling; this one runs Lloyd's L2 steps to a fixed
// point.) No calibration.
// Storage as counted (bitsPerWeight): bits per body weight, 32 per centroid (fp32 table), and per
// outlier an fp32 value plus a 32-bit flat index; the outliers' positions are known from those
// indices, so they take no code.

import { WhittleError } from '../../errors'
import { intParam, numberParam, type ParamSpec } from '../../../contract/method-params'
import { tensorCentroidGrid } from '../quant/centroid-grid'
import { nearestCentroid, weightedKMeans1D } from '../quant/kmeans'
import type { CompressionMethod } from './method'
import { ParamReader } from './params'

export interface GoboParams {
  bits: number
  /** Outliers lie further than this many standard deviations from the tensor's mean. */
  threshold: number
}

/** Bits of one outlier as counted: an fp32 value and a 32-bit flat index. */
export const OUTLIER_ENTRY_BITS = 32 + 32
/** Bits of one centroid (fp32). */
export const GOBO_CENTROID_BITS = 32

export const GOBO_PARAMS: readonly ParamSpec[] = [
  intParam('bits', 3, 2, 8, 'Code width: 2^bits centroids for the tensor’s Gaussian body'),
  numberParam('threshold', 3, 0.5, 100, 'Weights beyond this many standard deviations from the mean stay fp32', 0.5),
]

/** Storage bits per weight of a GOBO result with `outliers` of `n` weights kept in fp32. */
export function goboBitsPerWeight(bits: number, n: number, outliers: number): number {
  return ((n - outliers) * bits + outliers * OUTLIER_ENTRY_BITS + 2 ** bits * GOBO_CENTROID_BITS) / n
}

/** Φ, the standard normal CDF (erf by Abramowitz & Stegun 7.1.26, |error| < 1.5e-7: enough for a start). */
function normalCdf(x: number): number {
  const z = Math.abs(x) / Math.SQRT2
  const t = 1 / (1 + 0.3275911 * z)
  const erf =
    1 -
    ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-z * z)
  return x >= 0 ? 0.5 * (1 + erf) : 0.5 * (1 - erf)
}

/** Φ⁻¹(p) for p in (0, 1), by bisection on Φ. */
export function normalQuantile(p: number): number {
  let lo = -10,
    hi = 10
  for (let i = 0; i < 60; i++) {
    const mid = (lo + hi) / 2
    if (normalCdf(mid) < p) lo = mid
    else hi = mid
  }
  return (lo + hi) / 2
}

export interface GoboQuantization {
  /** 2^bits centroids, ascending, f32. */
  centroids: Float32Array
  /** Ascending flat indices of the outliers (kept as they were). */
  outlierIndex: Int32Array
  mean: number
  std: number
}

/** Quantizes W (any shape, flattened) in place: outliers kept, the body to its nearest centroid. */
export function goboQuantize(W: Float32Array, p: GoboParams): GoboQuantization {
  const n = W.length
  let sum = 0
  for (const w of W) sum += w
  const mean = sum / n
  let ss = 0
  for (const w of W) ss += (w - mean) ** 2
  const std = Math.sqrt(ss / n)
  const limit = p.threshold * std
  const outliers: number[] = []
  const body: number[] = []
  let lo = Infinity,
    hi = -Infinity
  for (let i = 0; i < n; i++) {
    if (Math.abs(W[i] - mean) > limit) outliers.push(i)
    else {
      body.push(W[i])
      lo = Math.min(lo, W[i])
      hi = Math.max(hi, W[i])
    }
  }
  const k = 2 ** p.bits
  const init = Array.from({ length: k }, (_, j) =>
    Math.min(hi, Math.max(lo, mean + std * normalQuantile((j + 0.5) / k))),
  )
  const centroids = Float32Array.from(weightedKMeans1D(body, null, k, { init }).centroids, Math.fround).sort()
  const isOutlier = new Uint8Array(n)
  for (const i of outliers) isOutlier[i] = 1
  for (let i = 0; i < n; i++) if (!isOutlier[i]) W[i] = centroids[nearestCentroid(centroids, W[i])]
  return { centroids, outlierIndex: Int32Array.from(outliers), mean, std }
}

function goboFormat(p: GoboParams): string {
  return `gobo w${p.bits} + fp32 beyond ${p.threshold}σ`
}

export const gobo: CompressionMethod<GoboParams> = {
  name: 'gobo',
  kind: 'quantize',
  summary:
    'GOBO: one table of 2^bits centroids per tensor by k-means on its Gaussian body; weights beyond a few σ kept in fp32; no calibration',
  params: GOBO_PARAMS,
  needs: { calibration: false, hessian: false },
  parseParams(raw, where) {
    const r = new ParamReader(raw, where, GOBO_PARAMS)
    const p: GoboParams = { bits: r.int('bits'), threshold: r.num('threshold') }
    r.done()
    return p
  },
  predict: (p, rows, cols) => {
    // Before running, outliers are predicted at the Gaussian's two-sided tail mass beyond the threshold.
    const tail = 2 * (1 - normalCdf(p.threshold))
    return {
      bitsPerWeight: goboBitsPerWeight(p.bits, rows * cols, Math.round(tail * rows * cols)),
      format: goboFormat(p),
    }
  },
  async compressGroup(ctx) {
    return ctx.linears.map((l) => {
      if (!l.weight.every(Number.isFinite))
        throw new WhittleError('validation', null, `gobo: ${l.name} has non-finite weights`)
      const q = goboQuantize(l.weight, l.params)
      const n = l.rows * l.cols
      const outliers = q.outlierIndex.length
      return {
        name: l.name,
        bitsPerWeight: goboBitsPerWeight(l.params.bits, n, outliers),
        format: goboFormat(l.params),
        grid: tensorCentroidGrid(q.centroids, outliers / n),
      }
    })
  },
}
