// safetensors: files written here for every dtype, then read back through the public entry points.
// Expected values come from the test's own encodings (bit patterns written out by hand or via DataView),
// never from the decoder under test.

import { readFileSync, writeFileSync, existsSync, readdirSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { openModelFiles } from './open'
import { readSafetensors, openShardedSafetensors } from './safetensors'
import { writeSafetensors, type SafetensorsTensorInput } from './safetensors-writer'
import { decodeToF32, readTensorBytes, readTensorF32, rowBytes, rowElements } from './read'
import type { DType, TensorEntry } from './types'
import { expectWhittleError, f16Bits, tempFolder } from './testing/temp-files-and-errors'

const { dir, cleanup } = tempFolder()
afterAll(cleanup)

/** A dtype's test values: the bytes as stored, and the f32 each must decode to. */
interface Case {
  dtype: DType
  shape: number[]
  bytes: Uint8Array
  expected: number[]
}

function viaView(n: number, size: number, put: (v: DataView, i: number) => void): Uint8Array {
  const b = new Uint8Array(n * size)
  const v = new DataView(b.buffer)
  for (let i = 0; i < n; i++) put(v, i)
  return b
}

function bf16BitsOf(x: number): number {
  const u = new Uint32Array(Float32Array.of(x).buffer)[0]
  if ((u & 0xffff) !== 0) throw new Error(`${x} is not exact in bf16`)
  return u >>> 16
}

function cases(): Case[] {
  const f64 = [0, -1.5, Math.PI, 1e300, -1e-300]
  const f32 = [1.5, -0, NaN, Infinity, 3.4028234663852886e38, 2 ** -149]
  const f16 = [1, -2, 0.5, 65504, 2 ** -24, -0, Infinity, -Infinity, NaN, 0.333251953125]
  const bf16 = [1, -2.5, 0.15625, 2 ** 100, 2 ** -130, Infinity, -0, -3 * 2 ** 60]
  // E4M3 (bias 7, no infinities, S.1111.111 is NaN) and E5M2 (bias 15, IEEE-like) written out by hand.
  const e4m3: [number, number][] = [
    [0x38, 1],
    [0xc0, -2],
    [0x7e, 448],
    [0xfe, -448],
    [0x01, 2 ** -9],
    [0x08, 2 ** -6],
    [0x3c, 1.5],
    [0x00, 0],
    [0x80, -0],
    [0x7f, NaN],
  ]
  const e5m2: [number, number][] = [
    [0x3c, 1],
    [0xc0, -2],
    [0x7b, 57344],
    [0x7c, Infinity],
    [0xfc, -Infinity],
    [0x01, 2 ** -16],
    [0x04, 2 ** -14],
    [0x3e, 1.5],
    [0x7e, NaN],
  ]
  const i64 = [0n, -1n, 2n ** 40n + 3n, -(2n ** 53n), 2n ** 62n, -(2n ** 63n)]
  const u64 = [0n, 2n ** 64n - 1n, 12345n, 2n ** 32n]
  const i32 = [-2147483648, 2147483647, 0, -5]
  const u32 = [4294967295, 7, 0, 65536]
  const i16 = [-32768, 32767, -1, 0]
  const u16 = [65535, 1, 0, 256]
  const i8 = [-128, 127, -1, 0]
  const u8 = [0, 255, 7, 128]
  const bool = [0, 1, 1, 0]
  return [
    {
      dtype: 'F64',
      shape: [5],
      bytes: viaView(5, 8, (v, i) => v.setFloat64(i * 8, f64[i], true)),
      expected: f64.map(Math.fround),
    },
    { dtype: 'F32', shape: [2, 3], bytes: viaView(6, 4, (v, i) => v.setFloat32(i * 4, f32[i], true)), expected: f32 },
    {
      dtype: 'F16',
      shape: [2, 5],
      bytes: viaView(10, 2, (v, i) => v.setUint16(i * 2, f16Bits(f16[i]), true)),
      expected: f16,
    },
    {
      dtype: 'BF16',
      shape: [8],
      bytes: viaView(8, 2, (v, i) => v.setUint16(i * 2, bf16BitsOf(bf16[i]), true)),
      expected: bf16,
    },
    { dtype: 'F8_E4M3', shape: [10], bytes: Uint8Array.from(e4m3.map((p) => p[0])), expected: e4m3.map((p) => p[1]) },
    { dtype: 'F8_E5M2', shape: [9], bytes: Uint8Array.from(e5m2.map((p) => p[0])), expected: e5m2.map((p) => p[1]) },
    {
      dtype: 'I64',
      shape: [6],
      bytes: viaView(6, 8, (v, i) => v.setBigInt64(i * 8, i64[i], true)),
      expected: i64.map((x) => Math.fround(Number(x))),
    },
    {
      dtype: 'U64',
      shape: [4],
      bytes: viaView(4, 8, (v, i) => v.setBigUint64(i * 8, u64[i], true)),
      expected: u64.map((x) => Math.fround(Number(x))),
    },
    {
      dtype: 'I32',
      shape: [4],
      bytes: viaView(4, 4, (v, i) => v.setInt32(i * 4, i32[i], true)),
      expected: i32.map(Math.fround),
    },
    {
      dtype: 'U32',
      shape: [2, 2],
      bytes: viaView(4, 4, (v, i) => v.setUint32(i * 4, u32[i], true)),
      expected: u32.map(Math.fround),
    },
    { dtype: 'I16', shape: [4], bytes: viaView(4, 2, (v, i) => v.setInt16(i * 2, i16[i], true)), expected: i16 },
    { dtype: 'U16', shape: [4], bytes: viaView(4, 2, (v, i) => v.setUint16(i * 2, u16[i], true)), expected: u16 },
    { dtype: 'I8', shape: [4], bytes: viaView(4, 1, (v, i) => v.setInt8(i, i8[i])), expected: i8 },
    { dtype: 'U8', shape: [1, 4], bytes: Uint8Array.from(u8), expected: u8 },
    { dtype: 'BOOL', shape: [4], bytes: Uint8Array.from(bool), expected: bool },
  ]
}

/** Exact equality that treats NaN as equal to NaN and tells -0 from 0. */
function expectSameFloats(actual: Float32Array, expected: number[], what: string): void {
  expect(actual.length, what).toBe(expected.length)
  for (let i = 0; i < expected.length; i++) {
    const ok = Number.isNaN(expected[i]) ? Number.isNaN(actual[i]) : Object.is(actual[i], Math.fround(expected[i]))
    expect(ok, `${what}[${i}]: got ${actual[i]}, expected ${expected[i]}`).toBe(true)
  }
}

/** The header as the file holds it, parsed by the test itself. */
function rawHeader(path: string): { n: number; json: Record<string, { data_offsets: [number, number] }> } {
  const bytes = readFileSync(path)
  const n = Number(bytes.readBigUInt64LE(0))
  return { n, json: JSON.parse(bytes.subarray(8, 8 + n).toString('utf8')) }
}

describe('safetensors round trip, every dtype', () => {
  const all = cases()
  const file = join(dir, 'all-dtypes.safetensors')

  it('writes a file whose index matches the header and whose data decodes to the encoded values', async () => {
    const inputs: SafetensorsTensorInput[] = all.map((c) => ({
      name: `t.${c.dtype}`,
      dtype: c.dtype,
      shape: c.shape,
      data: c.bytes,
    }))
    await writeSafetensors(file, inputs, { format: 'pt', note: 'written by a test' })
    const model = await openModelFiles(file)
    expect(model.format).toBe('safetensors')
    expect(model.files).toEqual([file])
    expect(model.metadata).toEqual({ format: 'pt', note: 'written by a test' })
    expect(model.config).toBeNull()
    expect(model.tensors.map((t) => t.name).sort()).toEqual(all.map((c) => `t.${c.dtype}`).sort())
    expect(model.sizeOnDisk).toBe(readFileSync(file).length)

    const { n, json } = rawHeader(file)
    expect((8 + n) % 8).toBe(0) // the writer pads the header so the data starts 8-aligned
    for (const c of all) {
      const t = model.tensors.find((e) => e.name === `t.${c.dtype}`)!
      expect(t.dtype).toBe(c.dtype)
      expect(t.shape).toEqual(c.shape)
      expect(t.byteLength).toBe(c.bytes.length)
      expect(t.offset).toBe(8 + n + json[t.name].data_offsets[0])
      expect(await readTensorBytes(t, 0, t.byteLength)).toEqual(c.bytes)
      expectSameFloats(await readTensorF32(t), c.expected, c.dtype)
    }
  })

  it('decodes from unaligned byte offsets (no typed-array view at an odd offset)', () => {
    for (const c of all) {
      const n = c.expected.length
      const shifted = new Uint8Array(c.bytes.length + 3)
      shifted.set(c.bytes, 3)
      const out = new Float32Array(n + 2).fill(7)
      decodeToF32(c.dtype, shifted.subarray(3), n, out)
      expectSameFloats(out.subarray(0, n), c.expected, `${c.dtype} unaligned`)
      expect(out[n]).toBe(7) // nothing written past n
    }
  })

  it('reads partial ranges, into caller buffers (shared memory included)', async () => {
    const t = (await readSafetensors(file)).tensors.find((e) => e.name === 't.I32')!
    const whole = all.find((c) => c.dtype === 'I32')!.bytes
    expect(await readTensorBytes(t, 4, 8)).toEqual(whole.subarray(4, 12))
    const shared = new Uint8Array(new SharedArrayBuffer(64), 5, 20)
    const got = await readTensorBytes(t, 0, 16, shared)
    expect(got.buffer).toBe(shared.buffer)
    expect(Array.from(got)).toEqual(Array.from(whole))
    await expectWhittleError(() => readTensorBytes(t, 8, 12), 'validation', file, 'outside')
    await expectWhittleError(() => readTensorBytes(t, 0, 16, new Uint8Array(8)), 'validation', file, 'destination')
    await expectWhittleError(() => readTensorF32(t, 3), 'validation', file, '4 elements')
  })
})

describe('row geometry', () => {
  const e = (dtype: DType, shape: number[]): TensorEntry => ({
    name: 'x',
    dtype,
    shape,
    file: '/x',
    offset: 0,
    byteLength: 0,
  })
  it('counts a row as all dims but the first, in whole blocks for block types', () => {
    expect(rowElements(e('F32', [3, 4, 5]))).toBe(20)
    expect(rowBytes(e('F32', [3, 4, 5]))).toBe(80)
    expect(rowElements(e('BF16', [7]))).toBe(7)
    expect(rowBytes(e('BF16', [7]))).toBe(14)
    expect(rowElements(e('F32', []))).toBe(1)
    expect(rowBytes(e('Q8_0', [10, 64]))).toBe(2 * 34)
    expect(rowBytes(e('Q4_K', [3, 512]))).toBe(2 * 144)
    expect(rowBytes(e('Q6_K', [1, 256]))).toBe(210)
  })
})

describe('streaming writer', () => {
  const rows = 64
  const cols = 48
  const expected = (r: number, c: number): number => Math.fround(r * 0.5 - c * 0.25)
  function* rowChunks(): Iterable<Uint8Array> {
    for (let r = 0; r < rows; r++) {
      const row = new Float32Array(cols)
      for (let c = 0; c < cols; c++) row[c] = expected(r, c)
      yield new Uint8Array(row.buffer)
    }
  }
  async function* asyncChunks(): AsyncIterable<Uint8Array> {
    for (const chunk of rowChunks()) yield chunk
  }

  it('accepts sync and async producers and checks their byte counts', async () => {
    const file = join(dir, 'streamed.safetensors')
    await writeSafetensors(file, [
      { name: 'a', dtype: 'F32', shape: [rows, cols], data: rowChunks },
      { name: 'b', dtype: 'F32', shape: [rows, cols], data: asyncChunks },
      { name: 'empty', dtype: 'F16', shape: [0, 4], data: new Uint8Array(0) },
      { name: 'scalar', dtype: 'I64', shape: [], data: new Uint8Array(8).fill(0xff) },
    ])
    const f = await readSafetensors(file)
    expect(f.warnings).toEqual([])
    for (const name of ['a', 'b']) {
      const w = await readTensorF32(f.tensors.find((t) => t.name === name)!)
      for (let i = 0; i < rows * cols; i++) expect(w[i]).toBe(expected(Math.floor(i / cols), i % cols))
    }
    expect(await readTensorF32(f.tensors.find((t) => t.name === 'empty')!)).toHaveLength(0)
    expect(Array.from(await readTensorF32(f.tensors.find((t) => t.name === 'scalar')!))).toEqual([-1])
  })

  it('rejects a producer that yields too few or too many bytes, leaving no file behind', async () => {
    const existing = join(dir, 'keep.safetensors')
    await writeSafetensors(existing, [{ name: 'x', dtype: 'U8', shape: [1], data: Uint8Array.of(42) }])
    const before = readFileSync(existing)
    const short = function* (): Iterable<Uint8Array> {
      yield new Uint8Array(10)
    }
    const long = function* (): Iterable<Uint8Array> {
      yield new Uint8Array(12)
      yield new Uint8Array(12)
    }
    await expectWhittleError(
      () => writeSafetensors(existing, [{ name: 'x', dtype: 'F32', shape: [3], data: short }]),
      'validation',
      null,
      'only 10',
      'needs 12',
    )
    await expectWhittleError(
      () => writeSafetensors(existing, [{ name: 'x', dtype: 'F32', shape: [3], data: long }]),
      'validation',
      null,
      'more than 12',
    )
    await expectWhittleError(
      () => writeSafetensors(existing, [{ name: 'x', dtype: 'F32', shape: [3], data: new Uint8Array(11) }]),
      'validation',
      null,
      '11 data bytes',
    )
    expect(readFileSync(existing)).toEqual(before) // the old file is untouched
    expect(readdirSync(dir).filter((n) => n.endsWith('.tmp'))).toEqual([]) // temp files removed
  })
})

describe('sharded checkpoints', () => {
  const folder = join(dir, 'sharded')
  const shardA = 'model-00001-of-00002.safetensors'
  const shardB = 'model-00002-of-00002.safetensors'
  const f32 = (...v: number[]): Uint8Array => new Uint8Array(Float32Array.from(v).buffer)

  async function writeModel(weightMap: Record<string, string>): Promise<void> {
    mkdirSync(folder, { recursive: true })
    await writeSafetensors(join(folder, shardA), [
      { name: 'embed', dtype: 'F32', shape: [2, 2], data: f32(1, 2, 3, 4) },
      { name: 'norm', dtype: 'F32', shape: [2], data: f32(5, 6) },
    ])
    await writeSafetensors(join(folder, shardB), [{ name: 'head', dtype: 'F32', shape: [1, 2], data: f32(7, 8) }])
    writeFileSync(
      join(folder, 'model.safetensors.index.json'),
      JSON.stringify({ metadata: { total_size: 32 }, weight_map: weightMap }),
    )
    writeFileSync(join(folder, 'config.json'), JSON.stringify({ model_type: 'llama', hidden_size: 2 }))
  }
  const goodMap = { embed: shardA, norm: shardA, head: shardB }

  it('opens every shard through the index, directly or via the folder', async () => {
    await writeModel(goodMap)
    const byIndex = await openModelFiles(join(folder, 'model.safetensors.index.json'))
    const byFolder = await openModelFiles(folder)
    for (const m of [byIndex, byFolder]) {
      expect(m.files).toEqual([join(folder, shardA), join(folder, shardB)])
      expect(m.tensors.map((t) => t.name)).toEqual(['embed', 'norm', 'head'])
      expect(m.tensors.find((t) => t.name === 'head')!.file).toBe(join(folder, shardB))
      expect(m.config).toEqual({ model_type: 'llama', hidden_size: 2 })
      expect(m.warnings).toEqual([])
    }
    expect(Array.from(await readTensorF32(byFolder.tensors[2]))).toEqual([7, 8])
    expect(byFolder.sizeOnDisk).toBe(
      readFileSync(join(folder, shardA)).length + readFileSync(join(folder, shardB)).length,
    )
  })

  it('names the shard when the index and a shard disagree', async () => {
    await writeModel({ ...goodMap, extra: shardB })
    await expectWhittleError(
      () => openShardedSafetensors(join(folder, 'model.safetensors.index.json')),
      'format',
      join(folder, shardB),
      'does not contain tensor "extra"',
    )
    await writeModel({ embed: shardA, head: shardB })
    await expectWhittleError(
      () => openShardedSafetensors(join(folder, 'model.safetensors.index.json')),
      'format',
      join(folder, shardA),
      '"norm"',
      'does not list',
    )
    await writeModel({ ...goodMap, head: 'model-00003-of-00002.safetensors' })
    await expectWhittleError(
      () => openModelFiles(folder),
      'not-found',
      join(folder, 'model-00003-of-00002.safetensors'),
      'no such file',
    )
    await writeModel({ ...goodMap, head: '../outside.safetensors' })
    await expectWhittleError(
      () => openModelFiles(folder),
      'format',
      join(folder, 'model.safetensors.index.json'),
      'outside',
    )
    writeFileSync(join(folder, 'model.safetensors.index.json'), JSON.stringify({ weights: {} }))
    await expectWhittleError(
      () => openModelFiles(folder),
      'format',
      join(folder, 'model.safetensors.index.json'),
      'weight_map',
    )
    expect(existsSync(join(folder, shardA))).toBe(true)
  })
})
