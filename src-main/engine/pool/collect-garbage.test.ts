import { describe, expect, it } from 'vitest'
import { COLLECT_GARBAGE_MIN_BYTES, collectGarbage } from './collect-garbage'

// A WeakRef's target stays alive until the job that made it ends: let one turn pass before collecting.
const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

describe('collectGarbage', () => {
  it('frees an array nothing holds any more, when the bytes let go are worth a collection', async () => {
    let held: Float32Array | null = new Float32Array(1 << 20)
    const ref = new WeakRef(held)
    held = null
    await nextTurn()
    collectGarbage(COLLECT_GARBAGE_MIN_BYTES)
    expect(ref.deref()).toBeUndefined()
  })

  it('leaves an array that is still held', async () => {
    const kept = new Float32Array(16).fill(3)
    const ref = new WeakRef(kept)
    await nextTurn()
    collectGarbage(COLLECT_GARBAGE_MIN_BYTES)
    expect(ref.deref()?.[15]).toBe(3)
    expect(kept[0]).toBe(3)
  })
})
