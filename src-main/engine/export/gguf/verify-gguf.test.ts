// The export's read-back check on a real llama.cpp file (stories260K.gguf): it passes when every tensor's
// bytes hash as intended, and one changed byte anywhere in a tensor's data fails it with a typed error
// naming the file shown to the user and the tensor.

import { copyFile, mkdtemp, open, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { crc32 } from 'node:zlib'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { isWhittleError } from '../../errors'
import { readGguf } from '../../formats/gguf'
import { ggmlTypeById } from '../../formats/ggml-types'
import { readTensorBytes } from '../../formats/read'
import { closeFile } from '../../io/ranged-file'
import { hasShared, shared, SKIP_SHARED } from '../../testing/shared-data'
import { verifyGgufExport, type IntendedTensor } from './verify-gguf'

const source = shared('models', 'stories260K-gguf', 'stories260K.gguf')
let tmp: string
beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'whittle-verify-'))
})
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true })
})

/** What an export that wrote `file` meant to write, hashed with zlib's CRC-32 directly. */
async function intendedOf(file: string): Promise<{ intended: IntendedTensor[]; at: number[] }> {
  const g = await readGguf(file)
  const intended = await Promise.all(
    g.infos.map(async (info, i) => ({
      name: info.name,
      type: ggmlTypeById(info.ggmlType)!.name,
      dims: info.dims,
      hash: crc32(await readTensorBytes(g.tensors[i], 0, g.tensors[i].byteLength)),
      checksum: null,
    })),
  )
  closeFile(file)
  return { intended, at: g.tensors.map((t) => t.offset + Math.floor(t.byteLength / 2)) }
}

describe.skipIf(!hasShared)('verifyGgufExport', () => {
  it('passes an intact file and fails one changed byte in any tensor, naming it', async () => {
    const { intended, at } = await intendedOf(source)
    await verifyGgufExport(source, intended, undefined, 'shown.gguf')
    // The first, a middle and the last tensor.
    for (const i of [0, Math.floor(at.length / 2), at.length - 1]) {
      const file = path.join(tmp, `changed-${i}.gguf`)
      await copyFile(source, file)
      const h = await open(file, 'r+')
      const byte = Buffer.alloc(1)
      await h.read(byte, 0, 1, at[i])
      byte[0] ^= 0x01
      await h.write(byte, 0, 1, at[i])
      await h.close()
      const e = await verifyGgufExport(file, intended, undefined, 'shown.gguf').catch((err: unknown) => err)
      expect(isWhittleError(e) && [e.code, e.file]).toEqual(['format', 'shown.gguf'])
      expect((e as Error).message).toContain(`"${intended[i].name}" bytes differ`)
    }
  })
})

if (!hasShared) console.warn(`verify-gguf.test.ts: ${SKIP_SHARED}`)
