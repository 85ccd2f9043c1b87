// The block pipeline hands blocks out in order whatever order they finish in, passes them with their CRCs to onBlock in order,
// never holds more than depth + 1 blocks or buffers, never writes into a block the consumer still holds,
// and stops at a failed block with that block's error.

import { describe, expect, it } from 'vitest'
import { isWhittleError, WhittleError } from '../../errors'
import { BlockPipeline, type BlockJob } from './block-pipeline'

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

/** Block i: `bytes` bytes of value i & 0xff and "CRC" i, finishing after a pseudo-random delay (out of order). */
function jobs(count: number, bytes: number, running: { now: number; peak: number }): BlockJob[] {
  return Array.from({ length: count }, (_, i) => ({
    bytes,
    async run(out: Uint8Array | null) {
      running.now++
      running.peak = Math.max(running.peak, running.now)
      await sleep((i * 7) % 5)
      const into = out ?? new Uint8Array(bytes)
      into.fill(i & 0xff, 0, bytes)
      running.now--
      return { bytes: into.subarray(0, bytes), crc: i }
    },
  }))
}

describe('BlockPipeline', () => {
  it('hands out every block in order, intact until the next is asked for, within depth + 1 buffers', async () => {
    for (const depth of [1, 2, 3]) {
      const running = { now: 0, peak: 0 }
      const seen: number[] = []
      const p = new BlockPipeline(jobs(40, 64, running), {
        depth,
        bufferBytes: 64,
        onBlock: (block, i) => {
          expect([block.bytes[0], block.crc]).toEqual([i & 0xff, i])
          seen.push(i)
        },
      })
      for (let i = 0; i < 40; i++) {
        const chunk = await p.next()
        // A slow consumer: the blocks ahead finish meanwhile, and must not touch this one's buffer.
        await sleep(3)
        expect(chunk.every((b) => b === (i & 0xff))).toBe(true)
      }
      await p.close()
      expect(seen).toEqual(Array.from({ length: 40 }, (_, i) => i))
      // The block being awaited, and `depth` ahead of it.
      expect(running.peak).toBeLessThanOrEqual(depth + 1)
      expect(running.peak).toBeGreaterThan(1)
      expect(p.buffersAllocated).toBeLessThanOrEqual(depth + 1)
      expect(p.peakBytes).toBeLessThanOrEqual((depth + 1) * 64)
      await expect(p.next()).rejects.toSatisfy(isWhittleError)
    }
  })

  it('gives a block larger than its buffers an array of its own', async () => {
    const running = { now: 0, peak: 0 }
    const p = new BlockPipeline([...jobs(2, 16, running), ...jobs(1, 100, running)], { depth: 2, bufferBytes: 16 })
    const sizes = [(await p.next()).length, (await p.next()).length, (await p.next()).length]
    expect(sizes).toEqual([16, 16, 100])
    expect(p.buffersAllocated).toBe(2)
  })

  it('fails at the failed block with its error, after handing out the blocks before it', async () => {
    const running = { now: 0, peak: 0 }
    const list = jobs(6, 8, running)
    const boom = new WhittleError('io', '/x.gguf', 'read failed')
    list[3] = { bytes: 8, run: () => Promise.reject(boom) }
    const p = new BlockPipeline(list, { depth: 2, bufferBytes: 8 })
    for (let i = 0; i < 3; i++) expect((await p.next())[0]).toBe(i)
    await expect(p.next()).rejects.toBe(boom)
    await p.close()
    expect(running.now).toBe(0)
  })

  it('releases the memory of jobs that bring their own once each block is done with, or at close', async () => {
    const released: number[] = []
    const list: BlockJob[] = Array.from({ length: 8 }, (_, i) => ({
      bytes: 4,
      ownsMemory: true,
      async run(out: Uint8Array | null) {
        expect(out).toBeNull()
        await sleep((i * 3) % 4)
        return { bytes: new Uint8Array(4).fill(i), crc: i, release: () => released.push(i) }
      },
    }))
    const p = new BlockPipeline(list, { depth: 2, bufferBytes: 4 })
    for (let i = 0; i < 5; i++) {
      expect((await p.next())[0]).toBe(i)
      // The block handed out is held until the next is asked for.
      expect(released).toEqual(Array.from({ length: i }, (_, k) => k))
    }
    await p.close()
    // Block 4 (handed out) and 5, 6 (encoded ahead), each once; 7 was never started.
    expect(released.sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6])
    expect(p.buffersAllocated).toBe(0)
  })

  it('refuses a block that encodes to another size than announced', async () => {
    const p = new BlockPipeline([{ bytes: 8, run: async () => ({ bytes: new Uint8Array(7), crc: 0 }) }], {
      depth: 1,
      bufferBytes: 8,
    })
    const e = await p.next().catch((err: unknown) => err)
    expect(isWhittleError(e) && e.code).toBe('format')
  })
})
