// Corrupt, truncated and hostile GGUF files, assembled byte by byte: each must give a WhittleError naming
// the file and the fault. Claimed sizes of 2^40..2^60 must be refused before anything is allocated.

import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { ByteBuilder } from '../io/byte-builder'
import { openModelFiles } from './open'
import { readGguf } from './gguf'
import { writeGguf } from './gguf-writer'
import { expectWhittleError, tempFolder } from './testing/temp-files-and-errors'

const { dir, cleanup } = tempFolder()
afterAll(cleanup)

let counter = 0
function save(bytes: Uint8Array, ext = '.gguf'): string {
  const path = join(dir, `bad-${counter++}${ext}`)
  writeFileSync(path, bytes)
  return path
}

const TYPE = { u8: 0, u32: 4, bool: 7, string: 8, array: 9 } as const

function prefix(tensors: bigint | number, kvs: bigint | number, version = 3): ByteBuilder {
  return new ByteBuilder().text('GGUF').u32(version).i64(BigInt(tensors)).i64(BigInt(kvs))
}
function str(b: ByteBuilder, s: string): ByteBuilder {
  const e = new TextEncoder().encode(s)
  return b.u64(e.length).bytes(e)
}
function info(b: ByteBuilder, name: string, dims: number[], type: number, offset: number): ByteBuilder {
  str(b, name).u32(dims.length)
  for (const d of dims) b.i64(BigInt(d))
  return b.u32(type).u64(offset)
}
/** A file with the given tensor infos (no KVs), padded to 32, then `data` bytes. */
function withTensors(infos: (b: ByteBuilder) => void, count: number, data: number): string {
  const b = prefix(count, 0)
  infos(b)
  b.pad(32)
  b.bytes(new Uint8Array(data))
  return save(b.finish())
}

describe('GGUF framing', () => {
  it('rejects a bad magic, through the reader and through open', async () => {
    const path = save(new ByteBuilder().text('GGUX').u32(3).i64(0n).i64(0n).finish())
    await expectWhittleError(() => readGguf(path), 'format', path, 'magic')
    await expectWhittleError(() => openModelFiles(path), 'format', path, 'magic')
    const noExt = save(new ByteBuilder().text('GGUX').u32(3).i64(0n).i64(0n).finish(), '.bin')
    await expectWhittleError(() => openModelFiles(noExt), 'unsupported', noExt, 'not a safetensors, gguf')
  })

  it('refuses v1, unknown versions and big-endian files as unsupported', async () => {
    const v1 = save(prefix(0, 0, 1).finish())
    await expectWhittleError(() => readGguf(v1), 'unsupported', v1, 'v1')
    const v4 = save(prefix(0, 0, 4).finish())
    await expectWhittleError(() => readGguf(v4), 'unsupported', v4, 'version 4')
    const be = save(prefix(0, 0, 0x03000000).finish())
    await expectWhittleError(() => readGguf(be), 'unsupported', be, 'big-endian')
  })

  it('rejects a file that ends inside the header', async () => {
    const path = save(new ByteBuilder().text('GGUF').u32(3).u16(0).finish())
    await expectWhittleError(() => readGguf(path), 'truncated', path, 'ends after')
  })

  it('rejects absurd or negative tensor and KV counts before allocating', async () => {
    const tensors = save(prefix(2n ** 50n, 0).finish())
    await expectWhittleError(
      () => readGguf(tensors),
      'truncated',
      tensors,
      '1125899906842624 tensors',
      'room for at most',
    )
    const kvs = save(prefix(0, 2n ** 40n).finish())
    await expectWhittleError(() => readGguf(kvs), 'truncated', kvs, 'metadata kvs')
    const negative = save(prefix(-1n, 0).finish())
    await expectWhittleError(() => readGguf(negative), 'format', negative, 'negative')
  })
})

describe('GGUF metadata', () => {
  it('rejects huge claimed string lengths in keys and values', async () => {
    const key = save(
      prefix(0, 1)
        .u64(2n ** 50n)
        .bytes(new Uint8Array(32))
        .finish(),
    )
    await expectWhittleError(() => readGguf(key), 'truncated', key, 'metadata key 0', 'claims 1125899906842624 bytes')
    const beyond = save(
      prefix(0, 1)
        .u64(2n ** 60n)
        .bytes(new Uint8Array(32))
        .finish(),
    )
    await expectWhittleError(() => readGguf(beyond), 'format', beyond, 'metadata key 0', 'beyond any file size')
    const value = str(prefix(0, 1), 'k')
      .u32(TYPE.string)
      .u64(2n ** 60n)
      .text('abc')
      .finish()
    const valuePath = save(value)
    await expectWhittleError(() => readGguf(valuePath), 'format', valuePath, '"k"', 'beyond any file size')
    const within = save(
      str(prefix(0, 1), 'k')
        .u32(TYPE.string)
        .u64(2n ** 40n)
        .text('abc')
        .finish(),
    )
    await expectWhittleError(() => readGguf(within), 'truncated', within, '"k"', 'claims 1099511627776 bytes')
    const overlong = save(
      new ByteBuilder().text('GGUF').u32(3).i64(0n).i64(1n).u64(70000).bytes(new Uint8Array(70010)).finish(),
    )
    await expectWhittleError(() => readGguf(overlong), 'format', overlong, 'limit')
  })

  it('rejects huge claimed array counts, of fixed-size and string items', async () => {
    const bytes = str(prefix(0, 1), 'arr')
      .u32(TYPE.array)
      .u32(TYPE.u8)
      .u64(2n ** 40n)
      .bytes(new Uint8Array(16))
      .finish()
    const path = save(bytes)
    await expectWhittleError(() => readGguf(path), 'truncated', path, '"arr"', '1099511627776 u8 items')
    const strings = save(
      str(prefix(0, 1), 'arr')
        .u32(TYPE.array)
        .u32(TYPE.string)
        .u64(2n ** 50n)
        .finish(),
    )
    await expectWhittleError(() => readGguf(strings), 'truncated', strings, 'string items')
    const beyond = save(
      str(prefix(0, 1), 'arr')
        .u32(TYPE.array)
        .u32(TYPE.string)
        .u64(2n ** 62n)
        .finish(),
    )
    await expectWhittleError(() => readGguf(beyond), 'format', beyond, 'beyond any file size')
    // One string inside a plausible array claims far more than the file holds.
    const inner = str(prefix(0, 1), 'arr')
      .u32(TYPE.array)
      .u32(TYPE.string)
      .u64(100n)
      .u64(2n ** 45n)
      .bytes(new Uint8Array(800))
      .finish()
    const innerPath = save(inner)
    await expectWhittleError(() => readGguf(innerPath), 'truncated', innerPath, '"arr"[0]')
  })

  it('rejects unknown value types, bad bools, duplicate keys, bad UTF-8 keys and deep nesting', async () => {
    const unknown = save(str(prefix(0, 1), 'k').u32(13).u32(0).finish())
    await expectWhittleError(() => readGguf(unknown), 'format', unknown, '"k"', 'unknown value type 13')
    const unknownItem = save(str(prefix(0, 1), 'k').u32(TYPE.array).u32(77).u64(0).finish())
    await expectWhittleError(() => readGguf(unknownItem), 'format', unknownItem, 'unknown value type 77')
    const bool = save(str(prefix(0, 1), 'k').u32(TYPE.bool).u8(2).finish())
    await expectWhittleError(() => readGguf(bool), 'format', bool, '"k"', 'bool')
    const dup = save(
      str(str(prefix(0, 2), 'k').u32(TYPE.u8).u8(1), 'k')
        .u32(TYPE.u8)
        .u8(2)
        .finish(),
    )
    await expectWhittleError(() => readGguf(dup), 'format', dup, '"k"', 'twice')
    const badKey = save(prefix(0, 1).u64(2).u8(0xc3).u8(0x28).u32(TYPE.u8).u8(0).finish())
    await expectWhittleError(() => readGguf(badKey), 'format', badKey, 'utf-8')
    const deep = str(prefix(0, 1), 'deep').u32(TYPE.array)
    for (let i = 0; i < 12; i++) deep.u32(TYPE.array).u64(1)
    deep.u32(TYPE.u8).u64(0)
    const deepPath = save(deep.finish())
    await expectWhittleError(() => readGguf(deepPath), 'format', deepPath, 'nested deeper')
  })

  it('keeps a "__proto__" key as plain data', async () => {
    const path = save(str(prefix(0, 1), '__proto__').u32(TYPE.array).u32(TYPE.u8).u64(2).u8(1).u8(2).finish())
    const g = await readGguf(path)
    expect(Object.getPrototypeOf(g.metadata)).toBe(Object.prototype)
    expect(Object.hasOwn(g.metadata, '__proto__')).toBe(true)
    expect(g.kvTypes.__proto__).toBe('array')
  })

  it('validates general.alignment', async () => {
    for (const [type, write, fault] of [
      [TYPE.u32, (b: ByteBuilder) => b.u32(48), 'power of two'],
      [TYPE.u32, (b: ByteBuilder) => b.u32(0), 'power of two'],
      [TYPE.string, (b: ByteBuilder) => str(b, '32'), 'integer'],
    ] as const) {
      const b = str(prefix(0, 1), 'general.alignment').u32(type)
      write(b)
      const path = save(b.finish())
      await expectWhittleError(() => readGguf(path), 'format', path, 'general.alignment', fault)
    }
  })
})

describe('GGUF tensor infos', () => {
  it('rejects bad dimension counts and dimensions', async () => {
    const five = withTensors((b) => info(b, 'w', [1, 1, 1, 1, 1], 0, 0), 1, 4)
    await expectWhittleError(() => readGguf(five), 'format', five, '"w"', '5 dimensions')
    const zero = withTensors((b) => info(b, 'w', [], 0, 0), 1, 4)
    await expectWhittleError(() => readGguf(zero), 'format', zero, '"w"', '0 dimensions')
    const negative = withTensors((b) => info(b, 'w', [4, -2], 0, 0), 1, 32)
    await expectWhittleError(() => readGguf(negative), 'format', negative, '"w"', 'invalid dimension -2')
    const huge = withTensors((b) => info(b, 'w', [2 ** 40, 2 ** 40], 0, 0), 1, 32)
    await expectWhittleError(() => readGguf(huge), 'format', huge, '"w"', 'too large')
  })

  it('refuses unknown, retired and undecodable ggml types as unsupported', async () => {
    const unknown = withTensors((b) => info(b, 'w', [32], 99, 0), 1, 128)
    await expectWhittleError(() => readGguf(unknown), 'unsupported', unknown, '"w"', 'unknown ggml type id 99')
    const retired = withTensors((b) => info(b, 'w', [32], 4, 0), 1, 128)
    await expectWhittleError(() => readGguf(retired), 'unsupported', retired, 'id 4')
    const iq = withTensors((b) => info(b, 'w', [256], 16, 0), 1, 128)
    await expectWhittleError(() => readGguf(iq), 'unsupported', iq, '"w"', 'IQ2_XXS')
  })

  it('rejects rows that are not whole blocks', async () => {
    const path = withTensors((b) => info(b, 'w', [33, 2], 8, 0), 1, 128)
    await expectWhittleError(() => readGguf(path), 'format', path, '"w"', 'row length 33', 'Q8_0 block size 32')
  })

  it('rejects misaligned, out-of-file and overlapping offsets, and duplicate names', async () => {
    const misaligned = withTensors((b) => info(b, 'w', [4], 0, 4), 1, 64)
    await expectWhittleError(() => readGguf(misaligned), 'format', misaligned, '"w"', 'offset 4', 'alignment 32')
    const outside = withTensors((b) => info(b, 'w', [4], 0, 2 ** 40), 1, 64)
    await expectWhittleError(() => readGguf(outside), 'truncated', outside, '"w"')
    const overlap = withTensors(
      (b) => {
        info(b, 'a', [16], 0, 0)
        info(b, 'b', [4], 0, 32)
      },
      2,
      64,
    )
    await expectWhittleError(() => readGguf(overlap), 'format', overlap, '"a"', '"b"', 'overlap')
    const dup = withTensors(
      (b) => {
        info(b, 'a', [4], 0, 0)
        info(b, 'a', [4], 0, 32)
      },
      2,
      64,
    )
    await expectWhittleError(() => readGguf(dup), 'format', dup, '"a"', 'twice')
  })

  it('rejects a file cut inside the tensor infos or the data', async () => {
    const good = join(dir, 'good.gguf')
    await writeGguf(good, {
      kv: [{ key: 'general.architecture', type: 'string', value: 'llama' }],
      tensors: [
        { name: 'a', type: 'F32', dims: [8], data: new Uint8Array(32) },
        { name: 'b', type: 'F32', dims: [64, 2], data: new Uint8Array(512) },
      ],
    })
    const bytes = readFileSync(good)
    const g = await readGguf(good)
    const cutData = save(bytes.subarray(0, bytes.length - 100))
    await expectWhittleError(() => readGguf(cutData), 'truncated', cutData, '"b"')
    const cutInfo = save(bytes.subarray(0, g.dataStart - 40))
    await expectWhittleError(() => readGguf(cutInfo), 'truncated', cutInfo)
  })
})
