// Gate gradients against central finite differences of the real loss, as the CoFi gate tests check them.

import { expect } from 'vitest'

/** Checks analytic[i] against (loss(z + h·e_i) − loss(z − h·e_i)) / 2h at each probe, within 2% + 1e-5. */
export async function expectFiniteDifferences(
  loss: (z: Float32Array) => Promise<number>,
  base: Float32Array,
  analytic: ArrayLike<number>,
  probes: readonly number[],
  h = 1e-2,
): Promise<void> {
  for (const i of probes) {
    const up = Float32Array.from(base)
    up[i] += h
    const down = Float32Array.from(base)
    down[i] -= h
    const fd = ((await loss(up)) - (await loss(down))) / (2 * h)
    expect(Math.abs(analytic[i] - fd), `gate ${i}: ${analytic[i]} vs ${fd}`).toBeLessThan(0.02 * Math.abs(fd) + 1e-5)
  }
}
