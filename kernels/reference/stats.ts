// Reference twin of kernels/assembly/stats.ts (the `moments` kernel), plus the pieces that only ever run
// in JS: merging per-chunk moments and turning them into a summary (the engine's TensorStats has this
// shape; kernels/ imports nothing from the engine).
//
// Summation order (shared with the kernel, which makes the two bit-exact):
//   element i of the chunk is added to lane i % 4 (the kernel keeps lanes 0,1 in one f64x2 and lanes 2,3
//   in another); elements past the last whole group of 4 are added to their lane after the vector loop;
//   the lanes are combined as (lane0 + lane2) + (lane1 + lane3).
// Non-finite values add +0 to their lane (lanes start at +0, so that never changes a lane's bits).
// Pass 1 gives the sum (-> mean = sum / count); pass 2 the central sums with d = f64(x) - mean:
// M2 += d*d, M3 += (d*d)*d, M4 += (d*d)*(d*d).

/** What merged moments summarise to. */
export interface MomentSummary {
  count: number
  /** Finite values only: min, max, mean, std. */
  min: number
  max: number
  mean: number
  std: number
  absmax: number
  /** Pearson kurtosis (normal = 3). */
  kurtosis: number
  zeroFraction: number
  nanCount: number
  infCount: number
}

export const MOMENT_COUNT = 0 // finite values
export const MOMENT_NAN = 1
export const MOMENT_INF = 2
export const MOMENT_ZERO = 3 // values equal to ±0
export const MOMENT_MIN = 4 // +Infinity when count is 0
export const MOMENT_MAX = 5 // -Infinity when count is 0
export const MOMENT_ABSMAX = 6
export const MOMENT_MEAN = 7
export const MOMENT_M2 = 8 // Σ (x - mean)^2 over finite values
export const MOMENT_M3 = 9
export const MOMENT_M4 = 10
export const MOMENTS_LENGTH = 11

/** The moments of no values: the identity of mergeMoments. */
export function emptyMoments(): Float64Array {
  const m = new Float64Array(MOMENTS_LENGTH)
  m[MOMENT_MIN] = Infinity
  m[MOMENT_MAX] = -Infinity
  return m
}

/** Moments of `src` (all of it) into `out` (f64[11], overwritten). */
export function moments(src: Float32Array, out: Float64Array = new Float64Array(MOMENTS_LENGTH)): Float64Array {
  const n = src.length
  let nan = 0
  let inf = 0
  let zero = 0
  let min = Infinity
  let max = -Infinity
  let absmax = 0
  const lanes = [0, 0, 0, 0]
  for (let i = 0; i < n; i++) {
    const x = src[i]
    if (x !== x) {
      nan++
      lanes[i & 3] += 0
      continue
    }
    if (x === Infinity || x === -Infinity) {
      inf++
      lanes[i & 3] += 0
      continue
    }
    if (x === 0) zero++
    min = Math.min(min, x)
    max = Math.max(max, x)
    absmax = Math.max(absmax, Math.abs(x))
    lanes[i & 3] += x
  }
  const count = n - nan - inf
  const sum = lanes[0] + lanes[2] + (lanes[1] + lanes[3])
  const mean = count > 0 ? sum / count : 0

  const m2 = [0, 0, 0, 0]
  const m3 = [0, 0, 0, 0]
  const m4 = [0, 0, 0, 0]
  for (let i = 0; i < n; i++) {
    const x = src[i]
    const finite = x - x === 0
    const d = finite ? x - mean : 0
    const d2 = d * d
    const lane = i & 3
    m2[lane] += d2
    m3[lane] += d2 * d
    m4[lane] += d2 * d2
  }
  out[MOMENT_COUNT] = count
  out[MOMENT_NAN] = nan
  out[MOMENT_INF] = inf
  out[MOMENT_ZERO] = zero
  out[MOMENT_MIN] = min
  out[MOMENT_MAX] = max
  out[MOMENT_ABSMAX] = absmax
  out[MOMENT_MEAN] = mean
  out[MOMENT_M2] = m2[0] + m2[2] + (m2[1] + m2[3])
  out[MOMENT_M3] = m3[0] + m3[2] + (m3[1] + m3[3])
  out[MOMENT_M4] = m4[0] + m4[2] + (m4[1] + m4[3])
  return out
}

/**
 * Combines the moments of two disjoint sets of values (Chan et al. for M2, Pébay 2008 for M3 and M4).
 * Returns a new array; either input may be empty (count 0), in which case the other's moments come back
 * unchanged, so merging chunk results into emptyMoments() reproduces a single chunk exactly.
 */
export function mergeMoments(a: Float64Array, b: Float64Array): Float64Array {
  const out = new Float64Array(MOMENTS_LENGTH)
  out[MOMENT_NAN] = a[MOMENT_NAN] + b[MOMENT_NAN]
  out[MOMENT_INF] = a[MOMENT_INF] + b[MOMENT_INF]
  out[MOMENT_ZERO] = a[MOMENT_ZERO] + b[MOMENT_ZERO]
  out[MOMENT_MIN] = Math.min(a[MOMENT_MIN], b[MOMENT_MIN])
  out[MOMENT_MAX] = Math.max(a[MOMENT_MAX], b[MOMENT_MAX])
  out[MOMENT_ABSMAX] = Math.max(a[MOMENT_ABSMAX], b[MOMENT_ABSMAX])

  const na = a[MOMENT_COUNT]
  const nb = b[MOMENT_COUNT]
  const n = na + nb
  out[MOMENT_COUNT] = n
  if (nb === 0 || na === 0) {
    const only = nb === 0 ? a : b
    out[MOMENT_MEAN] = n === 0 ? 0 : only[MOMENT_MEAN]
    out[MOMENT_M2] = n === 0 ? 0 : only[MOMENT_M2]
    out[MOMENT_M3] = n === 0 ? 0 : only[MOMENT_M3]
    out[MOMENT_M4] = n === 0 ? 0 : only[MOMENT_M4]
    return out
  }
  const delta = b[MOMENT_MEAN] - a[MOMENT_MEAN]
  const deltaN = delta / n
  const deltaN2 = deltaN * deltaN
  const term1 = delta * deltaN * na * nb // = delta^2 na nb / n
  const m2a = a[MOMENT_M2],
    m2b = b[MOMENT_M2]
  const m3a = a[MOMENT_M3],
    m3b = b[MOMENT_M3]
  out[MOMENT_MEAN] = a[MOMENT_MEAN] + deltaN * nb
  out[MOMENT_M2] = m2a + m2b + term1
  out[MOMENT_M3] = m3a + m3b + term1 * deltaN * (na - nb) + 3 * deltaN * (na * m2b - nb * m2a)
  out[MOMENT_M4] =
    a[MOMENT_M4] +
    b[MOMENT_M4] +
    term1 * deltaN2 * (na * na - na * nb + nb * nb) +
    6 * deltaN2 * (na * na * m2b + nb * nb * m2a) +
    4 * deltaN * (na * m3b - nb * m3a)
  return out
}

/** The summary of merged moments: population std, Pearson kurtosis (normal = 3). */
export function finishStats(m: Float64Array): MomentSummary {
  const count = m[MOMENT_COUNT]
  const nanCount = m[MOMENT_NAN]
  const infCount = m[MOMENT_INF]
  const total = count + nanCount + infCount
  const m2 = m[MOMENT_M2]
  const empty = count === 0
  return {
    count,
    // With no finite values there is no range; report 0 rather than ±Infinity (which JSON cannot carry).
    min: empty ? 0 : m[MOMENT_MIN],
    max: empty ? 0 : m[MOMENT_MAX],
    mean: empty ? 0 : m[MOMENT_MEAN],
    std: empty ? 0 : Math.sqrt(m2 / count),
    absmax: m[MOMENT_ABSMAX],
    kurtosis: m2 === 0 || empty ? 0 : (count * m[MOMENT_M4]) / (m2 * m2),
    zeroFraction: total === 0 ? 0 : m[MOMENT_ZERO] / total,
    nanCount,
    infCount,
  }
}
