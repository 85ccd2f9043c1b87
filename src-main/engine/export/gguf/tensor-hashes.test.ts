// The re-read hash is CRC-32 (checked against the standard's check value), equals the hash of each
// tensor's bytes however the reads are cut and whatever lies between tensors, sees a single changed
// byte, and only types whose bytes determine their values are checked by hash alone.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { isWhittleError } from '../../errors'
import { closeFile } from '../../io/ranged-file'
import { WorkerPool } from '../../pool/worker-pool'
import { CrcThreads } from './crc-threads'
import { hashBytes, hashSpansOnDisk, hashTensorOnDisk, tensorCheck, TENSOR_HASH_NAME } from './tensor-hashes'
import { crc32Bitwise } from '../../testing/crc32-bitwise'

const dir = mkdtempSync(path.join(os.tmpdir(), 'whittle-hashes-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const pattern = (n: number, seed: number): Uint8Array =>
  Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff)

describe('hashBytes', () => {
  it('is CRC-32: the standard check value, and continues over concatenated chunks', () => {
    expect(TENSOR_HASH_NAME).toBe('CRC-32')
    expect(hashBytes(new TextEncoder().encode('123456789'))).toBe(0xcbf43926)
    const data = pattern(5000, 7)
    expect(hashBytes(data)).toBe(crc32Bitwise(data))
    expect(hashBytes(data.subarray(1234), hashBytes(data.subarray(0, 1234)))).toBe(crc32Bitwise(data))
  })
})

describe('hashSpansOnDisk', () => {
  // Three tensors with gaps (padding) between them, and 17 bytes of header before.
  const tensors = [pattern(1000, 7), pattern(0, 0), pattern(333, 99), pattern(4096, 5)]
  const file = path.join(dir, 'spans.bin')
  const spans: { offset: number; byteLength: number }[] = []
  const parts: Uint8Array[] = [new Uint8Array(17).fill(1)]
  let at = 17
  for (const t of tensors) {
    spans.push({ offset: at, byteLength: t.length })
    parts.push(t, new Uint8Array(13).fill(2))
    at += t.length + 13
  }
  writeFileSync(file, Buffer.concat(parts))
  afterAll(() => closeFile(file))

  it('hashes exactly each span, in any read size', async () => {
    const want = tensors.map(crc32Bitwise)
    for (const readBytes of [1, 7, 999, 1000, 4096, 1 << 20])
      expect(await hashSpansOnDisk(file, spans, readBytes)).toEqual(want)
    expect(await hashTensorOnDisk({ name: 't', dtype: 'U8', shape: [333], file, ...spans[2] }, 64)).toBe(want[2])
  })

  it('sees one changed byte, and only in the tensor it belongs to', async () => {
    const changed = path.join(dir, 'changed.bin')
    const bytes = Buffer.concat(parts)
    bytes[spans[2].offset + 200] ^= 0x10
    writeFileSync(changed, bytes)
    try {
      for (const direct of [false, true]) {
        const got = await hashSpansOnDisk(changed, spans, 256, { direct })
        expect(got[2]).not.toBe(crc32Bitwise(tensors[2]))
        expect([got[0], got[1], got[3]]).toEqual([tensors[0], tensors[1], tensors[3]].map(crc32Bitwise))
      }
    } finally {
      closeFile(changed)
    }
  })

  it('reads around the page cache (direct) to the same hashes, spans and reads at any alignment', async () => {
    // Spans that start and end off the 4 KiB grid, across several aligned reads, and the file's end too.
    const big = [pattern(10_000, 1), pattern(4096, 2), pattern(12_345, 3)]
    const bigFile = path.join(dir, 'direct.bin')
    const bigSpans: { offset: number; byteLength: number }[] = []
    const bigParts: Uint8Array[] = [new Uint8Array(4099).fill(1)]
    let offset = 4099
    for (const t of big) {
      bigSpans.push({ offset, byteLength: t.length })
      bigParts.push(t, new Uint8Array(13).fill(2))
      offset += t.length + 13
    }
    writeFileSync(bigFile, Buffer.concat(bigParts).subarray(0, offset - 13))
    try {
      const want = big.map(crc32Bitwise)
      for (const readBytes of [1, 999, 4096, 5000, 1 << 20])
        expect(await hashSpansOnDisk(bigFile, bigSpans, readBytes, { direct: true })).toEqual(want)
      expect(await hashSpansOnDisk(file, spans, 4096, { direct: true })).toEqual(tensors.map(crc32Bitwise))
    } finally {
      closeFile(bigFile)
    }
  })

  it('refuses spans out of order with a typed error naming the file', async () => {
    const e = await hashSpansOnDisk(file, [spans[2], spans[0]]).catch((err: unknown) => err)
    expect(isWhittleError(e) && [e.code, e.file]).toEqual(['validation', file])
  })

  it('hashes an empty tensor as CRC-32 of nothing (0)', async () => {
    expect(await hashTensorOnDisk({ name: 't', dtype: 'U8', shape: [0], file, offset: 3, byteLength: 0 })).toBe(0)
    expect(await hashSpansOnDisk(file, [])).toEqual([])
  })
})

describe('hashSpansOnDisk in a pool’s kernel memory, on CRC threads', () => {
  let pool: WorkerPool
  beforeAll(async () => {
    pool = await WorkerPool.create({ threads: 2 })
  })
  afterAll(async () => {
    await pool?.close()
  })

  // Spans off the 4 KiB grid, small and large (the large ones cut into slices, one per thread), a gap.
  const tensors = [pattern(3001, 4), pattern(0, 0), pattern(1_200_007, 8), pattern(17, 6), pattern(600_000, 9)]
  const file = path.join(dir, 'workers.bin')
  const spans: { offset: number; byteLength: number }[] = []
  const parts: Uint8Array[] = [new Uint8Array(4100).fill(3)]
  let at = 4100
  for (const t of tensors) {
    spans.push({ offset: at, byteLength: t.length })
    parts.push(t, new Uint8Array(29).fill(4))
    at += t.length + 29
  }
  writeFileSync(file, Buffer.concat(parts))
  afterAll(() => closeFile(file))

  it('gives each span’s CRC-32, read directly or not, in any read size, kernel memory given back', async () => {
    const want = tensors.map(crc32Bitwise)
    const live = pool.arena.liveBytes
    for (const direct of [false, true])
      for (const readBytes of [4096, 5000, 1 << 20, 16 << 20])
        expect(await hashSpansOnDisk(file, spans, readBytes, { direct, pool }), `${direct} ${readBytes}`).toEqual(want)
    // Threads given by the caller (as the export passes its own) are used and left running.
    const threads = new CrcThreads(pool)
    try {
      expect(await hashSpansOnDisk(file, spans, 1 << 20, { direct: true, pool, crcThreads: threads })).toEqual(want)
    } finally {
      await threads.close()
    }
  })

  it('sees one changed byte in a large span, and only there', async () => {
    const changed = path.join(dir, 'workers-changed.bin')
    const bytes = Buffer.concat(parts)
    bytes[spans[2].offset + 1_000_000] ^= 0x01
    writeFileSync(changed, bytes)
    try {
      for (const direct of [false, true]) {
        const got = await hashSpansOnDisk(changed, spans, 1 << 20, { direct, pool })
        expect(got[2]).not.toBe(crc32Bitwise(tensors[2]))
        expect(got.filter((_, i) => i !== 2)).toEqual(tensors.filter((_, i) => i !== 2).map(crc32Bitwise))
      }
    } finally {
      closeFile(changed)
    }
  })
})

describe('tensorCheck', () => {
  it('checks ggml types by hash alone, anything else by decoding too', () => {
    for (const type of ['F32', 'F16', 'BF16', 'Q8_0', 'Q4_K', 'IQ4_XS', 'TQ1_0'])
      expect(tensorCheck(type)).toBe('crc32')
    expect(tensorCheck('NOT_A_GGML_TYPE')).toBe('crc32+decode')
  })
})
