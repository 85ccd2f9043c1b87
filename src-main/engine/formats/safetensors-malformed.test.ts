// Corrupt, truncated and hostile safetensors files: each must give a WhittleError naming the file and the
// fault, never a crash, a hang, or an allocation sized by a number the file claims.

import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { openModelFiles } from './open'
import { MAX_HEADER_BYTES, MAX_TENSORS, readSafetensors } from './safetensors'
import { expectWhittleError, tempFolder } from './testing/temp-files-and-errors'

const { dir, cleanup } = tempFolder()
afterAll(cleanup)

let counter = 0

/** Writes u64 header length + header bytes + data; `claimedLength` overrides the length field. */
function stFile(header: string | Uint8Array, dataBytes: number, claimedLength?: bigint): string {
  const h = typeof header === 'string' ? new TextEncoder().encode(header) : header
  const buf = new Uint8Array(8 + h.length + dataBytes)
  new DataView(buf.buffer).setBigUint64(0, claimedLength ?? BigInt(h.length), true)
  buf.set(h, 8)
  const path = join(dir, `bad-${counter++}.safetensors`)
  writeFileSync(path, buf)
  return path
}

const entry = (dtype: string, shape: unknown, offsets: unknown): unknown => ({ dtype, shape, data_offsets: offsets })
const header = (entries: Record<string, unknown>): string => JSON.stringify(entries)

describe('safetensors header framing', () => {
  it('rejects a file shorter than the length field', async () => {
    const path = join(dir, 'tiny.safetensors')
    writeFileSync(path, Uint8Array.of(1, 2, 3))
    await expectWhittleError(() => readSafetensors(path), 'truncated', path, '3 bytes')
  })

  it('rejects a header length over 100 MB without allocating it', async () => {
    const path = stFile('{}', 0, BigInt(MAX_HEADER_BYTES) + 1n)
    await expectWhittleError(() => readSafetensors(path), 'format', path, 'header length', 'limit')
    const huge = stFile('{}', 0, 2n ** 63n)
    await expectWhittleError(() => readSafetensors(huge), 'format', huge, 'header length')
  })

  it('rejects a header length that runs past the end of the file', async () => {
    const path = stFile('{}', 0, 1000n)
    await expectWhittleError(() => readSafetensors(path), 'truncated', path, 'header length 1000', 'past the end')
  })

  it('rejects a header that is not a UTF-8 JSON object', async () => {
    const notBrace = stFile('[1,2]', 0)
    await expectWhittleError(() => readSafetensors(notBrace), 'format', notBrace, 'does not start with "{"')
    const badUtf8 = stFile(Uint8Array.of(0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d), 0)
    await expectWhittleError(() => readSafetensors(badUtf8), 'format', badUtf8, 'utf-8')
    const badJson = stFile('{"a": {"dtype": "F32",', 0)
    await expectWhittleError(() => readSafetensors(badJson), 'format', badJson, 'not valid json')
    const notEntry = stFile('{"a": [1, 2]}', 0)
    await expectWhittleError(() => readSafetensors(notEntry), 'format', notEntry, '"a"', 'not an object')
  })

  it('rejects a misnamed random file opened by path', async () => {
    const path = join(dir, 'random.safetensors')
    writeFileSync(path, new TextEncoder().encode('this is just some text, not a model at all'))
    await expectWhittleError(() => openModelFiles(path), 'format', path, 'header length')
  })
})

describe('safetensors entries', () => {
  it('rejects unknown dtypes as unsupported', async () => {
    const path = stFile(header({ w: entry('F4_E2M1', [2], [0, 1]) }), 1)
    await expectWhittleError(() => readSafetensors(path), 'unsupported', path, '"w"', 'F4_E2M1')
    const missing = stFile(header({ w: { shape: [1], data_offsets: [0, 4] } }), 4)
    await expectWhittleError(() => readSafetensors(missing), 'format', missing, '"w"', 'dtype')
  })

  it('rejects shapes with negative, fractional or non-numeric dims', async () => {
    for (const shape of [[-1, 4], [2.5, 2], ['4'], 4, [2 ** 53]]) {
      const path = stFile(header({ w: entry('U8', shape, [0, 4]) }), 4)
      await expectWhittleError(() => readSafetensors(path), 'format', path, '"w"', 'shape')
    }
  })

  it('rejects shapes whose product leaves the safe-integer range', async () => {
    const path = stFile(header({ w: entry('F64', [2 ** 30, 2 ** 30, 2 ** 10], [0, 8]) }), 8)
    await expectWhittleError(() => readSafetensors(path), 'format', path, '"w"', 'too large')
  })

  it('rejects malformed data_offsets', async () => {
    for (const offsets of [[0], [0, 4, 8], [4, 0], [-4, 0], [0, '4'], null]) {
      const path = stFile(header({ w: entry('U8', [4], offsets) }), 8)
      await expectWhittleError(() => readSafetensors(path), 'format', path, '"w"', 'data_offsets')
    }
  })

  it('rejects a byte span that differs from shape × dtype size', async () => {
    const path = stFile(header({ w: entry('F32', [2, 3], [0, 20]) }), 24)
    await expectWhittleError(() => readSafetensors(path), 'format', path, '"w"', '20 bytes', 'needs 24')
  })

  it('rejects offsets past the data buffer (truncated file)', async () => {
    const path = stFile(header({ a: entry('F32', [4], [0, 16]), b: entry('F32', [4], [16, 32]) }), 30)
    await expectWhittleError(() => readSafetensors(path), 'truncated', path, '"b"', 'ends at byte 32', '30 bytes')
    const far = stFile(header({ a: entry('U8', [4], [2 ** 40, 2 ** 40 + 4]) }), 8)
    await expectWhittleError(() => readSafetensors(far), 'truncated', far, '"a"')
  })

  it('rejects overlapping tensors, naming both', async () => {
    const path = stFile(header({ a: entry('F32', [4], [0, 16]), b: entry('F32', [2], [12, 20]) }), 20)
    await expectWhittleError(() => readSafetensors(path), 'format', path, '"a"', '"b"', 'overlap')
    const inside = stFile(header({ a: entry('U8', [16], [0, 16]), b: entry('U8', [4], [4, 8]) }), 16)
    await expectWhittleError(() => readSafetensors(inside), 'format', inside, 'overlap')
  })

  it('rejects duplicate tensor names (which JSON.parse would silently merge)', async () => {
    const text =
      '{"w": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]}, "w" : {"dtype": "U8", "shape": [4], "data_offsets": [4, 8]}}'
    const path = stFile(text, 8)
    await expectWhittleError(() => readSafetensors(path), 'format', path, '"w"', 'twice')
    // Escaped spellings of the same key are the same name.
    const escaped = stFile(
      '{"w": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]}, "\\u0077": {"dtype": "U8", "shape": [4], "data_offsets": [4, 8]}}',
      8,
    )
    await expectWhittleError(() => readSafetensors(escaped), 'format', escaped, 'twice')
  })

  it('rejects non-string __metadata__ values', async () => {
    const path = stFile(header({ __metadata__: { format: 1 }, w: entry('U8', [1], [0, 1]) }), 1)
    await expectWhittleError(() => readSafetensors(path), 'format', path, '__metadata__', '"format"')
  })

  it('rejects an absurd number of entries before looking at them', async () => {
    const parts: string[] = []
    for (let i = 0; i <= MAX_TENSORS + 1; i++) parts.push(`"${i}":0`)
    const path = stFile(`{${parts.join(',')}}`, 0)
    await expectWhittleError(() => readSafetensors(path), 'format', path, 'entries', 'not plausible')
  })

  it('keeps a "__proto__" name as plain data', async () => {
    const path = stFile(
      '{"__metadata__": {"__proto__": "x"}, "__proto__": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}}',
      1,
    )
    const f = await readSafetensors(path)
    expect(Object.getPrototypeOf(f.metadata)).toBe(Object.prototype)
    expect(Object.hasOwn(f.metadata, '__proto__')).toBe(true)
    expect(f.tensors.map((t) => t.name)).toEqual(['__proto__'])
  })

  it('accepts gaps and trailing bytes, with warnings', async () => {
    const path = stFile(
      header({ a: entry('U8', [4], [0, 4]), b: entry('U8', [4], [10, 14]), e: entry('F32', [0], [3, 3]) }),
      20,
    )
    const f = await readSafetensors(path)
    expect(f.tensors.map((t) => t.name)).toEqual(['a', 'e', 'b']) // data order
    expect(f.warnings).toHaveLength(2)
    expect(f.warnings[0]).toContain('6 bytes in 1 gap')
    expect(f.warnings[1]).toContain('6 bytes after the last tensor')
    const m = await openModelFiles(path)
    expect(m.warnings?.every((w) => w.startsWith(path))).toBe(true)
  })
})
