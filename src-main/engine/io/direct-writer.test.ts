// Writing around the page cache: whatever the chunks' sizes (across and within the aligned buffers, the
// file's length not a multiple of the alignment), the file holds exactly the chunks in order, re-read
// from disk; a flush mid-stream leaves a file of the right length that later writes continue; a chunk
// may be reused as soon as write() returns; a write the device refuses directly still lands, buffered.

import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { writeFileAtomically } from './atomic-writer'
import { alignedBuffers, DIRECT_ALIGNMENT } from './direct-io'
import { DirectWriter } from './direct-writer'

const dir = mkdtempSync(join(tmpdir(), 'whittle-direct-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

function pattern(n: number, seed: number): Uint8Array {
  const bytes = new Uint8Array(n)
  for (let i = 0; i < n; i++) bytes[i] = (i * 31 + seed + (i >> 12)) & 0xff
  return bytes
}

function concat(parts: Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(parts))
}

describe('alignedBuffers', () => {
  it('gives separate buffers of the size asked for, each on a 64 KiB boundary of one memory', () => {
    const buffers = alignedBuffers(3, 5000)!
    expect(buffers.map((b) => b.length)).toEqual([5000, 5000, 5000])
    expect(buffers.map((b) => b.byteOffset % 65536)).toEqual([0, 0, 0])
    buffers[1].fill(7)
    expect(buffers[0][4999]).toBe(0)
    expect(buffers[2][0]).toBe(0)
  })
})

/** Whether this temporary folder takes direct I/O at all (Linux's O_DIRECT; elsewhere writes are buffered). */
async function directAvailable(): Promise<boolean> {
  const probe = await DirectWriter.create(join(dir, 'probe.bin'), 'probe.bin')
  await probe?.close()
  return probe !== null
}

describe.runIf(await directAvailable())('DirectWriter', () => {
  it('writes chunks of any size, across its buffers, to exactly their bytes', async () => {
    const file = join(dir, 'chunks.bin')
    // 64 KiB buffers: chunks smaller than one, exactly one, spanning three, and a tail not a multiple of 4 KiB.
    const parts = [pattern(3, 1), pattern(65536, 2), pattern(200_000, 3), new Uint8Array(0), pattern(1000, 4)]
    const w = (await DirectWriter.create(file, file, 65536))!
    expect(w).not.toBeNull()
    for (const part of parts) await w.write(part)
    await w.flush()
    await w.sync()
    await w.close()
    const want = concat(parts)
    // Aligned writes of whole buffers: the device took every one directly.
    expect(w.isDirect).toBe(true)
    expect(w.written).toBe(want.length)
    expect(want.length % DIRECT_ALIGNMENT).not.toBe(0)
    expect(Buffer.from(readFileSync(file)).equals(Buffer.from(want))).toBe(true)
  })

  it('after a flush the file has the bytes so far; later writes continue the same partial buffer', async () => {
    const file = join(dir, 'flushed.bin')
    const w = (await DirectWriter.create(file, file, 65536))!
    const first = pattern(5000, 5)
    await w.write(first)
    await w.flush()
    expect(statSync(file).size).toBe(5000)
    expect(Buffer.from(readFileSync(file)).equals(Buffer.from(first))).toBe(true)
    const second = pattern(70_000, 6)
    await w.write(second)
    await w.flush()
    await w.close()
    expect(Buffer.from(readFileSync(file)).equals(Buffer.from(concat([first, second])))).toBe(true)
  })

  it('lets the producer reuse its chunk as soon as write() returns', async () => {
    const file = join(dir, 'reused.bin')
    const w = (await DirectWriter.create(file, file, 65536))!
    const chunk = new Uint8Array(40_000)
    const want: Uint8Array[] = []
    for (let k = 0; k < 5; k++) {
      chunk.fill(k + 1)
      want.push(chunk.slice())
      await w.write(chunk)
    }
    await w.flush()
    await w.close()
    expect(Buffer.from(readFileSync(file)).equals(Buffer.from(concat(want)))).toBe(true)
  })

  it('still writes every byte when a buffer is not a whole number of device blocks (a refused direct write)', async () => {
    const file = join(dir, 'refused.bin')
    // 1000-byte buffers: a direct write of 1000 bytes is refused by a device with 512-byte or larger blocks.
    const w = (await DirectWriter.create(file, file, 1000))!
    const parts = [pattern(2500, 8), pattern(777, 9)]
    for (const part of parts) await w.write(part)
    await w.flush()
    await w.sync()
    await w.close()
    expect(Buffer.from(readFileSync(file)).equals(Buffer.from(concat(parts)))).toBe(true)
  })
})

describe('writeFileAtomically with direct', () => {
  it('gives the same file as the buffered writer, and its size', async () => {
    const parts = [pattern(17, 1), pattern(5 << 20, 2), pattern(1000, 3), pattern(17 << 20, 4), pattern(7, 5)]
    const sizes: number[] = []
    for (const direct of [true, false]) {
      const file = join(dir, `atomic-${direct}.bin`)
      sizes.push(
        await writeFileAtomically(
          file,
          async (w) => {
            for (const part of parts) await w.write(part)
          },
          { direct },
        ),
      )
    }
    const want = concat(parts)
    expect(sizes).toEqual([want.length, want.length])
    expect(Buffer.from(readFileSync(join(dir, 'atomic-true.bin'))).equals(Buffer.from(want))).toBe(true)
    expect(Buffer.from(readFileSync(join(dir, 'atomic-false.bin'))).equals(Buffer.from(want))).toBe(true)
  })
})
