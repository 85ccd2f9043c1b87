// The output head scores windows laid end to end in chunks that need not start or end on a window: each
// row's target is the next token of its own window, and a window's last row gets none (−1).

import { describe, expect, it } from 'vitest'
import { nextTokenTargets } from './decoder-forward'

describe('nextTokenTargets', () => {
  it('maps every chunk of rows to the next token of its window, −1 at each window end', () => {
    const windows = [Int32Array.of(10, 11, 12), Int32Array.of(20, 21, 22), Int32Array.of(30, 31, 32)]
    const whole = new Int32Array(9)
    nextTokenTargets(windows, 0, whole)
    expect([...whole]).toEqual([11, 12, -1, 21, 22, -1, 31, 32, -1])
    // Chunks of 4 rows cross the window boundaries; together they give the same targets.
    const chunks: number[] = []
    for (let r0 = 0; r0 < 9; r0 += 4) {
      const out = new Int32Array(Math.min(4, 9 - r0))
      nextTokenTargets(windows, r0, out)
      chunks.push(...out)
    }
    expect(chunks).toEqual([...whole])
  })
})
