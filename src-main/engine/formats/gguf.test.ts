// GGUF: files written here (v2 and v3, every metadata type, nested and long arrays, block types), read
// back through the public entry points. Block bytes are assembled by hand so the expected values follow
// from the block layouts in shared/formats.md, not from the decoder under test.

import { existsSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { openModelFiles } from './open'
import { readGguf, readGgufArray } from './gguf'
import { writeGguf, type GgufKv } from './gguf-writer'
import { INLINE_ARRAY_LIMIT } from './gguf-metadata'
import { GGML_TYPES, ggmlTypeById } from './ggml-types'
import { readTensorBytes, readTensorF32 } from './read'
import { expectWhittleError, f16Bits, tempFolder } from './testing/temp-files-and-errors'

const { dir, cleanup } = tempFolder()
afterAll(cleanup)

const f32Bytes = (v: ArrayLike<number>): Uint8Array => new Uint8Array(Float32Array.from(v).buffer)

/** One Q8_0 block: fp16 d, then 32 int8. */
function q8Block(d: number, qs: number[]): Uint8Array {
  const b = new Uint8Array(34)
  new DataView(b.buffer).setUint16(0, f16Bits(d), true)
  b.set(Int8Array.from(qs).map((x) => x & 0xff) as unknown as Uint8Array, 2)
  return b
}

/** One Q4_0 block: fp16 d, byte j = q[j] | q[j+16] << 4; value = d·(q − 8). */
function q4Block(d: number, q: number[]): Uint8Array {
  const b = new Uint8Array(18)
  new DataView(b.buffer).setUint16(0, f16Bits(d), true)
  for (let j = 0; j < 16; j++) b[2 + j] = q[j] | (q[j + 16] << 4)
  return b
}

const kv: GgufKv[] = [
  { key: 'general.architecture', type: 'string', value: 'llama' },
  { key: 't.u8', type: 'u8', value: 255 },
  { key: 't.i8', type: 'i8', value: -128 },
  { key: 't.u16', type: 'u16', value: 65535 },
  { key: 't.i16', type: 'i16', value: -32768 },
  { key: 't.u32', type: 'u32', value: 4294967295 },
  { key: 't.i32', type: 'i32', value: -2147483648 },
  { key: 't.f32', type: 'f32', value: 0.1 },
  { key: 't.bool', type: 'bool', value: true },
  { key: 't.string', type: 'string', value: 'héllo ▁wörld' },
  { key: 't.u64', type: 'u64', value: 2n ** 64n - 1n },
  { key: 't.u64small', type: 'u64', value: 123456789012 },
  { key: 't.i64', type: 'i64', value: -(2n ** 40n) },
  { key: 't.f64', type: 'f64', value: Math.PI },
  { key: 't.short', type: 'array', itemType: 'i32', value: [1, -2, 3] },
  { key: 't.bools', type: 'array', itemType: 'bool', value: [true, false] },
  {
    key: 't.nested',
    type: 'array',
    itemType: 'array',
    value: [
      { itemType: 'string', value: ['a', 'bc'] },
      { itemType: 'array', value: [{ itemType: 'f64', value: [0.5] }] },
    ],
  },
  {
    key: 'tokenizer.ggml.tokens',
    type: 'array',
    itemType: 'string',
    value: Array.from({ length: 300 }, (_, i) => `tok${i}▁`),
  },
  {
    key: 'tokenizer.ggml.scores',
    type: 'array',
    itemType: 'f32',
    value: Array.from({ length: 300 }, (_, i) => -i / 4),
  },
  {
    key: 't.long64',
    type: 'array',
    itemType: 'u64',
    value: Array.from({ length: 100 }, (_, i) => BigInt(i) * 2n ** 50n),
  },
]

describe('GGUF round trip', () => {
  for (const version of [2, 3] as const) {
    it(`v${version}: metadata of every type, tensors with reversed dims, aligned data`, async () => {
      const file = join(dir, `model-v${version}.gguf`)
      const weights = Array.from({ length: 12 }, (_, i) => i - 5.5)
      await writeGguf(file, {
        version,
        kv,
        tensors: [
          { name: 'w', type: 'F32', dims: [4, 3], data: f32Bytes(weights) },
          { name: 'norm', type: 'F32', dims: [5], data: f32Bytes([1, 2, 3, 4, 5]) },
          {
            name: 'h',
            type: 'F16',
            dims: [3, 1, 1],
            data: new Uint8Array(new Uint16Array([f16Bits(1), f16Bits(-0.5), f16Bits(2048)]).buffer),
          },
        ],
      })
      const g = await readGguf(file)
      expect(g.version).toBe(version)
      expect(g.alignment).toBe(32)
      expect(g.dataStart % 32).toBe(0)
      const m = g.metadata
      expect(m['general.architecture']).toBe('llama')
      expect([m['t.u8'], m['t.i8'], m['t.u16'], m['t.i16'], m['t.u32'], m['t.i32']]).toEqual([
        255, -128, 65535, -32768, 4294967295, -2147483648,
      ])
      expect(m['t.f32']).toBe(Math.fround(0.1))
      expect(m['t.bool']).toBe(true)
      expect(m['t.string']).toBe('héllo ▁wörld')
      expect(m['t.u64']).toBe(2n ** 64n - 1n) // beyond 2^53: kept exact as a bigint
      expect(m['t.u64small']).toBe(123456789012)
      expect(m['t.i64']).toBe(-(2 ** 40))
      expect(m['t.f64']).toBe(Math.PI)
      expect(m['t.short']).toEqual([1, -2, 3])
      expect(m['t.bools']).toEqual([true, false])
      expect(m['t.nested']).toEqual([['a', 'bc'], [[0.5]]])
      expect(m['tokenizer.ggml.tokens']).toEqual({ type: 'array', itemType: 'string', length: 300 })
      expect(m['t.long64']).toEqual({ type: 'array', itemType: 'u64', length: 100 })
      expect(g.kvTypes['t.nested']).toBe('array')
      expect(g.kvTypes['t.f64']).toBe('f64')

      const tokens = await readGgufArray(file, 'tokenizer.ggml.tokens', g)
      expect(tokens).toEqual(Array.from({ length: 300 }, (_, i) => `tok${i}▁`))
      const scores = await readGgufArray(file, 'tokenizer.ggml.scores')
      expect(scores).toBeInstanceOf(Float32Array)
      expect(Array.from(scores as Float32Array)).toEqual(Array.from({ length: 300 }, (_, i) => -i / 4))
      expect(await readGgufArray(file, 't.long64', g)).toEqual(
        BigUint64Array.from({ length: 100 }, (_, i) => BigInt(i) * 2n ** 50n),
      )
      expect(await readGgufArray(file, 't.short', g)).toEqual(Int32Array.of(1, -2, 3))
      expect(await readGgufArray(file, 't.nested', g)).toEqual([['a', 'bc'], [Float64Array.of(0.5)]])

      const [w, norm, h] = g.tensors
      expect(w).toMatchObject({ name: 'w', dtype: 'F32', shape: [3, 4], byteLength: 48, offset: g.dataStart })
      expect(norm).toMatchObject({ shape: [5], byteLength: 20, offset: g.dataStart + 64 })
      expect(h).toMatchObject({ dtype: 'F16', shape: [1, 1, 3], byteLength: 6, offset: g.dataStart + 96 })
      expect(Array.from(await readTensorF32(w))).toEqual(weights) // row-major [3, 4] = ggml [4, 3]
      expect(Array.from(await readTensorF32(h))).toEqual([1, -0.5, 2048])
      expect(statSync(file).size).toBe(g.dataStart + 128) // the last tensor is padded too
    })
  }

  it('writes tensors produced on demand, in order, and refuses a producer that breaks its announced size', async () => {
    const file = join(dir, 'lazy.gguf')
    const order: string[] = []
    const lazy = (name: string, values: number[]) => ({
      byteLength: values.length * 4,
      produce: async () => (order.push(name), f32Bytes(values)),
    })
    await writeGguf(file, {
      kv: [],
      tensors: [
        { name: 'a', type: 'F32', dims: [2], data: lazy('a', [1, 2]) },
        { name: 'b', type: 'F32', dims: [3], data: lazy('b', [3, 4, 5]) },
      ],
    })
    expect(order).toEqual(['a', 'b'])
    const g = await readGguf(file)
    expect(Array.from(await readTensorF32(g.tensors[1]))).toEqual([3, 4, 5])
    const bad = join(dir, 'lazy-bad.gguf')
    await expect(
      writeGguf(bad, {
        kv: [],
        tensors: [{ name: 'a', type: 'F32', dims: [2], data: { byteLength: 8, produce: async () => f32Bytes([1]) } }],
      }),
    ).rejects.toThrow(/produced 4 bytes, 8 were announced/)
    expect(existsSync(bad)).toBe(false)
  })

  it('honours general.alignment and places tensors at its multiples', async () => {
    const file = join(dir, 'aligned.gguf')
    await writeGguf(file, {
      alignment: 256,
      kv: [],
      tensors: [
        { name: 'a', type: 'F32', dims: [3], data: f32Bytes([1, 2, 3]) },
        { name: 'b', type: 'I8', dims: [5], data: Int8Array.of(-1, 2, -3, 4, -5) as unknown as Uint8Array },
      ],
    })
    const g = await readGguf(file)
    expect(g.alignment).toBe(256)
    expect(g.kvTypes['general.alignment']).toBe('u32')
    expect(g.dataStart % 256).toBe(0)
    expect(g.tensors[1].offset - g.dataStart).toBe(256)
    expect(g.tensors[1].dtype).toBe('I8')
    expect(Array.from(await readTensorF32(g.tensors[1]))).toEqual([-1, 2, -3, 4, -5])
  })

  it('reads block types with the right geometry and values', async () => {
    const file = join(dir, 'blocks.gguf')
    const qA = Array.from({ length: 32 }, (_, i) => i * 8 - 127)
    const qB = Array.from({ length: 32 }, (_, i) => (i % 2 ? 1 : -1) * i)
    const q4 = Array.from({ length: 32 }, (_, i) => i % 16)
    const q8 = new Uint8Array([...q8Block(0.5, qA), ...q8Block(-0.0078125, qB), ...q8Block(0.5, qB), ...q8Block(2, qA)])
    const q4bytes = new Uint8Array([...q4Block(0.25, q4), ...q4Block(-3, q4)])
    await writeGguf(file, {
      kv: [{ key: 'general.architecture', type: 'string', value: 'llama' }],
      tensors: [
        { name: 'q8', type: 'Q8_0', dims: [64, 2], data: q8 },
        { name: 'q4', type: 'Q4_0', dims: [32, 2], data: q4bytes },
        { name: 'k', type: 'Q4_K', dims: [512, 3], data: new Uint8Array(6 * 144) },
        { name: 'k6', type: 'Q6_K', dims: [256, 2], data: new Uint8Array(2 * 210) },
      ],
    })
    const m = await openModelFiles(file)
    expect(m.format).toBe('gguf')
    const [q8t, q4t, kt, k6t] = m.tensors
    expect(q8t).toMatchObject({ dtype: 'Q8_0', shape: [2, 64], byteLength: 4 * 34 })
    expect(q4t).toMatchObject({ dtype: 'Q4_0', shape: [2, 32], byteLength: 2 * 18 })
    expect(kt).toMatchObject({ dtype: 'Q4_K', shape: [3, 512], byteLength: 6 * 144 })
    expect(k6t).toMatchObject({ dtype: 'Q6_K', shape: [2, 256], byteLength: 2 * 210 })
    expect(await readTensorBytes(q8t, 0, q8t.byteLength)).toEqual(q8)
    const expected8 = [
      ...qA.map((q) => 0.5 * q),
      ...qB.map((q) => -0.0078125 * q),
      ...qB.map((q) => 0.5 * q),
      ...qA.map((q) => 2 * q),
    ]
    const plusZero = (a: Float32Array): number[] => Array.from(a, (x) => x + 0) // -0 + 0 is 0: signs of zero aside
    expect(plusZero(await readTensorF32(q8t))).toEqual(expected8.map((x) => x + 0))
    const expected4 = [...q4.map((q) => 0.25 * (q - 8)), ...q4.map((q) => -3 * (q - 8))]
    expect(plusZero(await readTensorF32(q4t))).toEqual(expected4.map((x) => x + 0))
    // All-zero superblocks (d = dmin = 0) decode to zeros.
    expect(Array.from(await readTensorF32(kt)).every((x) => x === 0)).toBe(true)
    expect(Array.from(await readTensorF32(k6t)).every((x) => x === 0)).toBe(true)
  })

  it('walks a metadata block larger than the read window (many strings, one long string)', async () => {
    const file = join(dir, 'big-vocab.gguf')
    const vocab = Array.from({ length: 40_000 }, (_, i) => `piece-${i}-${'x'.repeat(i % 50)}`)
    const long = 'y'.repeat(3 << 20)
    await writeGguf(file, {
      kv: [
        { key: 'tokenizer.ggml.tokens', type: 'array', itemType: 'string', value: vocab },
        // Under tokenizer.*: outside it, metadata is capped at 1 MiB (limits.ts), and this string is 3 MiB.
        { key: 'tokenizer.chat_template', type: 'string', value: long },
        { key: 'after', type: 'u32', value: 7 },
      ],
      tensors: [{ name: 'x', type: 'F32', dims: [2], data: f32Bytes([3, 4]) }],
    })
    expect(statSync(file).size).toBeGreaterThan(4 << 20)
    const g = await readGguf(file)
    expect(g.metadata.after).toBe(7)
    expect((g.metadata['tokenizer.chat_template'] as string).length).toBe(long.length)
    expect(await readGgufArray(file, 'tokenizer.ggml.tokens', g)).toEqual(vocab)
    expect(Array.from(await readTensorF32(g.tensors[0]))).toEqual([3, 4])
  })

  it('summarises only arrays longer than the inline limit', async () => {
    const file = join(dir, 'limits.gguf')
    const at = Array.from({ length: INLINE_ARRAY_LIMIT }, (_, i) => i)
    const over = Array.from({ length: INLINE_ARRAY_LIMIT + 1 }, (_, i) => i)
    await writeGguf(file, {
      kv: [
        { key: 'at', type: 'array', itemType: 'u16', value: at },
        { key: 'over', type: 'array', itemType: 'u16', value: over },
      ],
      tensors: [],
    })
    const g = await readGguf(file)
    expect(g.metadata.at).toEqual(at)
    expect(g.metadata.over).toEqual({ type: 'array', itemType: 'u16', length: INLINE_ARRAY_LIMIT + 1 })
    expect(g.tensors).toEqual([])
  })
})

describe('GGUF writer and array accessor input checks', () => {
  it('refuses tensors and values it cannot encode', async () => {
    const file = join(dir, 'never-written.gguf')
    const one = (t: Partial<Parameters<typeof writeGguf>[1]['tensors'][number]>): Parameters<typeof writeGguf>[1] => ({
      kv: [],
      tensors: [{ name: 'w', type: 'F32', dims: [4], data: new Uint8Array(16), ...t }],
    })
    await expectWhittleError(
      () => writeGguf(file, one({ data: new Uint8Array(12) })),
      'validation',
      file,
      '12 data bytes',
      'need 16',
    )
    await expectWhittleError(() => writeGguf(file, one({ type: 'Q9_9' })), 'validation', file, 'unknown ggml type')
    await expectWhittleError(
      () => writeGguf(file, one({ type: 'Q8_0', dims: [48], data: new Uint8Array(51) })),
      'validation',
      file,
      'block size 32',
    )
    await expectWhittleError(() => writeGguf(file, one({ dims: [1, 1, 1, 1, 4] })), 'validation', file, '5 dims')
    await expectWhittleError(
      () => writeGguf(file, { kv: [{ key: 'k', type: 'u8', value: 256 }], tensors: [] }),
      'validation',
      null,
      '256 is not a valid u8',
    )
    await expectWhittleError(
      () => writeGguf(file, { kv: [{ key: 'k', type: 'u64', value: -1 }], tensors: [] }),
      'validation',
      null,
      'not a valid u64',
    )
    await expectWhittleError(
      () => writeGguf(file, { alignment: 24, kv: [], tensors: [] }),
      'validation',
      file,
      'power of two',
    )
    await expectWhittleError(
      () =>
        writeGguf(file, {
          kv: [
            { key: 'k', type: 'u8', value: 1 },
            { key: 'k', type: 'u8', value: 2 },
          ],
          tensors: [],
        }),
      'validation',
      file,
      'repeated',
    )
  })

  it('names missing and non-array keys', async () => {
    const file = join(dir, 'keys.gguf')
    await writeGguf(file, { kv: [{ key: 't.u32', type: 'u32', value: 1 }], tensors: [] })
    await expectWhittleError(() => readGgufArray(file, 'no.such.key'), 'not-found', file, 'no.such.key')
    await expectWhittleError(() => readGgufArray(file, 't.u32'), 'validation', file, 'not an array')
  })
})

describe('ggml type table', () => {
  it('has consistent ids, names and block sizes', () => {
    const ids = new Set(GGML_TYPES.map((t) => t.id))
    expect(ids.size).toBe(GGML_TYPES.length)
    for (const t of GGML_TYPES) expect(ggmlTypeById(t.id)).toBe(t)
    // Sizes that follow from the block structs: d (+ dmin) as fp16, packed quants, scales.
    expect(ggmlTypeById(8)).toMatchObject({ name: 'Q8_0', blockElements: 32, blockBytes: 34 })
    expect(ggmlTypeById(2)).toMatchObject({ name: 'Q4_0', blockElements: 32, blockBytes: 18 })
    expect(ggmlTypeById(12)).toMatchObject({ name: 'Q4_K', blockElements: 256, blockBytes: 144 })
    expect(ggmlTypeById(14)).toMatchObject({ name: 'Q6_K', blockElements: 256, blockBytes: 210 })
    expect(ggmlTypeById(30)).toMatchObject({ name: 'BF16', blockElements: 1, blockBytes: 2 })
    expect(ggmlTypeById(4)).toBeUndefined() // retired Q4_2
    // Bits per weight of the K-quants as ggml documents them.
    const bpw = (id: number): number => (ggmlTypeById(id)!.blockBytes * 8) / ggmlTypeById(id)!.blockElements
    expect([10, 11, 12, 13, 14].map(bpw)).toEqual([2.625, 3.4375, 4.5, 5.5, 6.5625])
  })
})
