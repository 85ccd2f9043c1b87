// Hashing kernel memory on the CRC threads: the joined slices give the CRC-32 of the whole range (a bitwise
// CRC-32 from the definition is the expectation) at sizes around the slice boundaries and zero; threads
// that are closed, or whose thread dies, fail with a typed error instead of hanging.

import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { isWhittleError } from '../../errors'
import { WorkerPool } from '../../pool/worker-pool'
import { CrcThreads } from './crc-threads'
import { hashKernelMemory, joinCrcs } from './worker-crc'
import { crc32Bitwise } from '../../testing/crc32-bitwise'

let pool: WorkerPool
beforeAll(async () => {
  pool = await WorkerPool.create({ threads: 2 })
})
afterAll(async () => {
  await pool?.close()
})

describe('hashKernelMemory', () => {
  it('gives the CRC-32 of the range, cut into slices or not, at odd sizes and zero', async () => {
    const threads = new CrcThreads(pool)
    const region = pool.arena.alloc(1_200_001, 'test bytes')
    try {
      const bytes = pool.arena.u8(region, 0, 1_200_001)
      for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 131 + (i >> 9)) & 0xff
      for (const [from, n] of [
        [0, 0],
        [5, 1],
        [3, 262_143],
        [1, 524_288],
        [7, 524_289],
        [0, 1_200_001],
      ]) {
        const want = crc32Bitwise(bytes.subarray(from, from + n))
        expect(await hashKernelMemory(threads, region.ptr + from, n), `${from}+${n}`).toBe(want)
      }
    } finally {
      pool.arena.release(region)
      await threads.close()
    }
  })

  it('joins nothing to the CRC before it', () => {
    expect(joinCrcs([], 0x1234)).toBe(0x1234)
  })

  it('fails with a typed error once closed', async () => {
    const threads = new CrcThreads(pool)
    await threads.close()
    const e = await threads.hash(0, 16).catch((err: unknown) => err)
    expect(isWhittleError(e) && e.code).toBe('kernel')
  })

  it('fails the outstanding hashes with a typed error when a thread dies', async () => {
    const threads = new CrcThreads(pool)
    try {
      // Far past the end of the shared memory: the thread's typed-array view throws, uncaught.
      const e = await threads.hash(pool.memory.buffer.byteLength + (1 << 30), 16).catch((err: unknown) => err)
      expect(isWhittleError(e) && e.code).toBe('kernel')
    } finally {
      await threads.close()
    }
  })
})
