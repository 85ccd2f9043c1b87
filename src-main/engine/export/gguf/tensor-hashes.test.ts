// The re-read hash of a tensor in a file equals SHA-256 of its bytes however the reads are cut, sees a
// single changed byte, and only types whose bytes determine their values are checked by hash alone.

import { createHash } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { closeFile } from '../../io/ranged-file'
import { hashBytes, hashTensorOnDisk, tensorCheck } from './tensor-hashes'

const dir = mkdtempSync(path.join(os.tmpdir(), 'whittle-hashes-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

function tensorFile(name: string, before: number, data: Uint8Array): { file: string; offset: number } {
  const file = path.join(dir, name)
  writeFileSync(file, Buffer.concat([new Uint8Array(before).fill(1), data, new Uint8Array(5).fill(2)]))
  return { file, offset: before }
}

describe('hashTensorOnDisk', () => {
  const data = Uint8Array.from({ length: 1000 }, (_, i) => (i * 31 + 7) & 0xff)
  const want = createHash('sha256').update(data).digest('hex')

  it('hashes exactly the tensor bytes, in any read size', async () => {
    const { file, offset } = tensorFile('a.bin', 17, data)
    const entry = { name: 't', dtype: 'U8' as const, shape: [1000], file, offset, byteLength: 1000 }
    try {
      expect(hashBytes(data)).toBe(want)
      for (const readBytes of [1, 7, 999, 1000, 4096]) expect(await hashTensorOnDisk(entry, readBytes)).toBe(want)
    } finally {
      closeFile(file)
    }
  })

  it('differs when one byte of the file differs', async () => {
    const changed = data.slice()
    changed[613] ^= 0x10
    const { file, offset } = tensorFile('b.bin', 3, changed)
    const entry = { name: 't', dtype: 'U8' as const, shape: [1000], file, offset, byteLength: 1000 }
    try {
      expect(await hashTensorOnDisk(entry, 64)).not.toBe(want)
    } finally {
      closeFile(file)
    }
  })

  it('hashes an empty tensor as SHA-256 of nothing', async () => {
    const { file } = tensorFile('c.bin', 0, new Uint8Array(0))
    const entry = { name: 't', dtype: 'U8' as const, shape: [0], file, offset: 0, byteLength: 0 }
    expect(await hashTensorOnDisk(entry)).toBe(createHash('sha256').digest('hex'))
  })
})

describe('tensorCheck', () => {
  it('checks ggml types by hash alone, anything else by decoding too', () => {
    for (const type of ['F32', 'F16', 'BF16', 'Q8_0', 'Q4_K', 'IQ4_XS', 'TQ1_0'])
      expect(tensorCheck(type)).toBe('sha256')
    expect(tensorCheck('NOT_A_GGML_TYPE')).toBe('sha256+decode')
  })
})
