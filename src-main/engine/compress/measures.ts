// Distances between a weight and its compressed version, shared by every kind of step.

/** ‖a − b‖_F / ‖a‖_F (0 for an all-zero a). */
export function relativeError(a: Float32Array, b: Float32Array): number {
  let num = 0,
    den = 0
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2
    den += a[i] ** 2
  }
  return den > 0 ? Math.sqrt(num / den) : 0
}
