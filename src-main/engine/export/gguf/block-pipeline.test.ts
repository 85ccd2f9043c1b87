// The block pipeline hands blocks out in order whatever order they finish in, passes them with their CRCs to onBlock in order,
// never holds more than depth + 1 blocks, never releases a block the consumer still holds,
// and stops at a failed block with that block's error.

import { describe, expect, it } from 'vitest'
import { isWhittleError, WhittleError } from '../../errors'
import { BlockPipeline, type BlockJob } from './block-pipeline'

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

/**
 * Block i: `bytes` bytes of value i & 0xff and "CRC" i, finishing after a pseudo-random delay (out of
 * order). Releasing it overwrites its bytes, as memory handed back and reused would be.
 */
function jobs(count: number, bytes: number, running: { now: number; peak: number }): BlockJob[] {
  return Array.from({ length: count }, (_, i) => ({
    bytes,
    async run() {
      running.now++
      running.peak = Math.max(running.peak, running.now)
      await sleep((i * 7) % 5)
      const into = new Uint8Array(bytes).fill(i & 0xff)
      running.now--
      return { bytes: into, crc: i, release: () => into.fill(0xee) }
    },
  }))
}

describe('BlockPipeline', () => {
  it('hands out every block in order, intact until the next is asked for, within depth + 1 blocks', async () => {
    for (const depth of [1, 2, 3]) {
      const running = { now: 0, peak: 0 }
      const seen: number[] = []
      const p = new BlockPipeline(jobs(40, 64, running), {
        depth,
        onBlock: (block, i) => {
          expect([block.bytes[0], block.crc]).toEqual([i & 0xff, i])
          seen.push(i)
        },
      })
      for (let i = 0; i < 40; i++) {
        const chunk = await p.next()
        // A slow consumer: the blocks ahead finish meanwhile, and this one must not be released yet.
        await sleep(3)
        expect(chunk.every((b) => b === (i & 0xff))).toBe(true)
      }
      await p.close()
      expect(seen).toEqual(Array.from({ length: 40 }, (_, i) => i))
      // The block being awaited, and `depth` ahead of it.
      expect(running.peak).toBeLessThanOrEqual(depth + 1)
      expect(running.peak).toBeGreaterThan(1)
      expect(p.peakBytes).toBeLessThanOrEqual((depth + 1) * 64)
      await expect(p.next()).rejects.toSatisfy(isWhittleError)
    }
  })

  it('fails at the failed block with its error, after handing out the blocks before it', async () => {
    const running = { now: 0, peak: 0 }
    const list = jobs(6, 8, running)
    const boom = new WhittleError('io', '/x.gguf', 'read failed')
    list[3] = { bytes: 8, run: () => Promise.reject(boom) }
    const p = new BlockPipeline(list, { depth: 2 })
    for (let i = 0; i < 3; i++) expect((await p.next())[0]).toBe(i)
    await expect(p.next()).rejects.toBe(boom)
    await p.close()
    expect(running.now).toBe(0)
  })

  it('releases each block once it is done with, or at close, exactly once', async () => {
    const released: number[] = []
    const list: BlockJob[] = Array.from({ length: 8 }, (_, i) => ({
      bytes: 4,
      async run() {
        await sleep((i * 3) % 4)
        return { bytes: new Uint8Array(4).fill(i), crc: i, release: () => released.push(i) }
      },
    }))
    const p = new BlockPipeline(list, { depth: 2 })
    for (let i = 0; i < 5; i++) {
      expect((await p.next())[0]).toBe(i)
      // The block handed out is held until the next is asked for.
      expect(released).toEqual(Array.from({ length: i }, (_, k) => k))
    }
    await p.close()
    // Block 4 (handed out) and 5, 6 (encoded ahead), each once; 7 was never started.
    expect(released.sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6])
  })

  it('refuses a block that encodes to another size than announced', async () => {
    const p = new BlockPipeline([{ bytes: 8, run: async () => ({ bytes: new Uint8Array(7), crc: 0 }) }], { depth: 1 })
    const e = await p.next().catch((err: unknown) => err)
    expect(isWhittleError(e) && e.code).toBe('format')
  })
})
