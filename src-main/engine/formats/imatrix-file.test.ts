// Importance-matrix files against llama.cpp's own (../shared/reference/gguf-golden/imatrix/imatrix.gguf
// and imatrix.dat, written by llama-imatrix from the same run): both read, agree with each other by
// llama.cpp's .dat rule, and Whittle's writers reproduce them byte for byte. Then round trips of what the
// goldens do not cover (several experts) and hostile files, each refused with a typed error naming it.

import { mkdtemp, readFile, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { WhittleError } from '../errors'
import { hasShared, shared, SKIP_SHARED } from '../testing/shared-data'
import { writeGguf } from './gguf-writer'
import { importanceFor, type Imatrix } from './imatrix-data'
import { encodeImatrixDat, parseImatrixDat } from './imatrix-dat'
import { imatrixFormatOf, readImatrixFile, writeImatrixFile } from './imatrix-file'
import { readImatrixGguf } from './imatrix-gguf'

let tmp: string
beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'whittle-imatrix-'))
})
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true })
})

const golden = (name: string): string => shared('reference', 'gguf-golden', 'imatrix', name)
const LAYER_PARTS = ['attn_k', 'attn_output', 'attn_q', 'attn_v', 'ffn_down', 'ffn_gate', 'ffn_up']

if (!hasShared) console.log(`[formats/imatrix-file.test] llama.cpp's imatrix files: ${SKIP_SHARED}`)

describe.skipIf(!hasShared)("llama-imatrix's files for small-llama (-c 128 --chunks 100)", () => {
  it('the GGUF imatrix: 14 entries (no token_embd, no output), 12,800 tokens each, its metadata', async () => {
    expect(await imatrixFormatOf(golden('imatrix.gguf'))).toBe('gguf')
    const { imatrix } = await readImatrixFile(golden('imatrix.gguf'))
    expect([...imatrix.entries.keys()].sort()).toEqual(
      [0, 1].flatMap((l) => LAYER_PARTS.map((p) => `blk.${l}.${p}.weight`)),
    )
    expect(imatrix.countUnit).toBe('tokens')
    expect(imatrix.chunkCount).toBe(100)
    expect(imatrix.chunkSize).toBe(128)
    expect(imatrix.datasets).toEqual(['tinystories_calib.txt'])
    for (const [name, e] of imatrix.entries) {
      expect(e.columns, name).toBe(name.includes('ffn_down') ? 768 : 256)
      expect([...e.counts], name).toEqual([12800])
    }
    // q, k and v read the same input, so llama.cpp records the same sums for each.
    expect(imatrix.entries.get('blk.1.attn_q.weight')!.sums).toEqual(imatrix.entries.get('blk.1.attn_v.weight')!.sums)
  })

  it('the .dat holds mean × ncall of the same sums (llama.cpp save_imatrix_legacy), and reads back as the same importances', async () => {
    expect(await imatrixFormatOf(golden('imatrix.dat'))).toBe('dat')
    const gguf = (await readImatrixFile(golden('imatrix.gguf'))).imatrix
    const dat = (await readImatrixFile(golden('imatrix.dat'))).imatrix
    expect(dat.countUnit).toBe('calls')
    expect(dat.chunkCount).toBe(100)
    expect(dat.datasets).toEqual(['tinystories_calib.txt'])
    expect([...dat.entries.keys()].sort()).toEqual([...gguf.entries.keys()].sort())
    for (const [name, g] of gguf.entries) {
      const d = dat.entries.get(name)!
      expect([...d.counts], name).toEqual([100]) // ceil(12800 / 128) calls
      const want = g.sums.map((s) => Math.fround(Math.fround(s / 12800) * 100))
      expect(d.sums, name).toEqual(want)
      // llama-quantize's importances from either file agree to the last bit or two.
      const a = importanceFor({ imatrix: gguf, file: null }, name, g.columns)!
      const b = importanceFor({ imatrix: dat, file: null }, name, g.columns)!
      for (let j = 0; j < a.length; j++)
        expect(Math.abs(a[j] - b[j]), `${name}[${j}]`).toBeLessThanOrEqual(Math.abs(a[j]) * 2.5e-7)
    }
  })

  it("Whittle's writers reproduce both files byte for byte from what was read", async () => {
    const { imatrix } = await readImatrixFile(golden('imatrix.gguf'))
    const ggufOut = path.join(tmp, 'again.gguf')
    await writeImatrixFile(ggufOut, imatrix, 'gguf')
    expect(Buffer.compare(await readFile(ggufOut), await readFile(golden('imatrix.gguf')))).toBe(0)
    expect(Buffer.compare(Buffer.from(encodeImatrixDat(imatrix, 'x.dat')), await readFile(golden('imatrix.dat')))).toBe(
      0,
    )
  })
})

function synthetic(): Imatrix {
  return {
    entries: new Map([
      [
        'blk.0.ffn_up_exps.weight',
        { columns: 3, sums: Float32Array.of(1, 2, 3, 40, 50, 60), counts: Float64Array.of(10, 0) },
      ],
      ['blk.0.attn_q.weight', { columns: 2, sums: Float32Array.of(0.5, 7), counts: Float64Array.of(6) }],
    ]),
    countUnit: 'tokens',
    chunkCount: 4,
    chunkSize: 4,
    datasets: ['a.txt', 'b.txt'],
  }
}

describe('round trips and the importances llama-quantize derives', () => {
  it('GGUF: two experts keep their own counts; an expert with no tokens gets importance 1', async () => {
    const file = path.join(tmp, 'experts.gguf')
    await writeImatrixFile(file, synthetic(), 'gguf')
    const back = await readImatrixGguf(file)
    expect(back.datasets).toEqual(['a.txt', 'b.txt'])
    expect(back.entries.get('blk.0.ffn_up_exps.weight')).toEqual(synthetic().entries.get('blk.0.ffn_up_exps.weight'))
    const imp = importanceFor({ imatrix: back, file }, 'blk.0.ffn_up_exps.weight', 3, 2)!
    expect([...imp]).toEqual([0.1, 0.2, 0.3].map(Math.fround).concat([1, 1, 1]))
    expect(importanceFor({ imatrix: back, file }, 'output.weight', 2)).toBeNull()
    expect(() => importanceFor({ imatrix: back, file }, 'blk.0.attn_q.weight', 3)).toThrow(
      /1 × 2, but the weight needs 1 × 3/,
    )
    await expect(writeImatrixFile(file, synthetic(), 'gguf')).rejects.toThrow(WhittleError) // never replaces
  })

  it('.dat: one count per entry, values mean × ncall, stored 1 × ncall for an expert with no tokens', async () => {
    const file = path.join(tmp, 'experts.dat')
    await writeImatrixFile(file, synthetic(), 'dat')
    const back = (await readImatrixFile(file)).imatrix
    expect(back.datasets).toEqual(['b.txt']) // the legacy format keeps the last dataset only
    const e = back.entries.get('blk.0.ffn_up_exps.weight')!
    expect([...e.counts]).toEqual([3]) // ceil(10 / 4)
    expect([...e.sums]).toEqual(
      [0.1 * 3, 0.2 * 3, 0.3 * 3].map((v, i) => Math.fround(Math.fround([1, 2, 3][i] / 10) * 3)).concat([3, 3, 3]),
    )
    // Importances: value / ncall, one flat row for both experts.
    const imp = importanceFor({ imatrix: back, file }, 'blk.0.ffn_up_exps.weight', 3, 2)!
    expect(imp[5]).toBe(1)
  })

  it('refuses to write an empty imatrix or a .dat-read one as GGUF', async () => {
    const empty: Imatrix = { ...synthetic(), entries: new Map() }
    await expect(writeImatrixFile(path.join(tmp, 'empty.gguf'), empty, 'gguf')).rejects.toThrow(/no entries/)
    const calls: Imatrix = { ...synthetic(), countUnit: 'calls', chunkSize: null }
    await expect(writeImatrixFile(path.join(tmp, 'calls.gguf'), calls, 'gguf')).rejects.toMatchObject({
      code: 'unsupported',
    })
  })
})

/** A .dat built field by field: [n, then per entry len, name, ncall, nval, values], then the trailer. */
function dat(parts: Array<number | string | Float32Array>): Uint8Array {
  const chunks: Uint8Array[] = parts.map((p) => {
    if (typeof p === 'string') return new TextEncoder().encode(p)
    if (p instanceof Float32Array) return new Uint8Array(p.buffer)
    return new Uint8Array(Int32Array.of(p).buffer)
  })
  return Buffer.concat(chunks)
}

describe('hostile .dat files: typed errors naming the file', () => {
  const ok = (): Array<number | string | Float32Array> => [1, 3, 'abc', 2, 2, Float32Array.of(1, 2), 2, 1, 'd']
  const cases: Array<[string, Uint8Array, RegExp]> = [
    ['an empty file', new Uint8Array(0), /ends inside the entry count/],
    ['no entries', dat([0]), /declares 0 entries/],
    ['a thousand entries in 40 bytes', dat([1000, 3, 'abc', 2, 2, Float32Array.of(1, 2)]), /room for at most/],
    ['a name longer than the limit', dat([1, 5000, 'x'.repeat(20)]), /name is 5000 bytes/],
    ['a negative name length', dat([1, -4, 'abcdefghijklmnop']), /name is -4 bytes/],
    ['a negative call count', dat([1, 3, 'abc', -1, 2, Float32Array.of(1, 2)]), /negative call count/],
    ['more values than bytes', dat([1, 3, 'abc', 2, 1 << 30, Float32Array.of(1, 2)]), /declares 1073741824 values/],
    ['a NaN value', dat([1, 3, 'abc', 2, 2, Float32Array.of(1, NaN)]), /abc\[1\] is NaN/],
    ['a negative value', dat([1, 3, 'abc', 2, 2, Float32Array.of(-1, 2)]), /abc\[0\] is -1/],
    [
      'a name that is not UTF-8',
      dat([1, 3, '\u00ff', 2, 2, Float32Array.of(1, 2)]).map((b, i) => (i >= 8 && i < 11 ? 0xff : b)),
      /not valid UTF-8/,
    ],
    [
      'the same name twice',
      dat([2, 1, 'a', 1, 1, Float32Array.of(1), 1, 'a', 1, 1, Float32Array.of(1)]),
      /appears twice/,
    ],
    ['a dataset name past the end', dat([...ok().slice(0, 7), 99, 'd']), /dataset name is 99 bytes/],
    ['bytes after the trailer', dat([...ok(), 'zz']), /2 unexpected bytes/],
  ]
  it('a well-formed one parses', () => {
    const m = parseImatrixDat(dat(ok()), 'ok.dat')
    expect([...m.entries.get('abc')!.sums]).toEqual([1, 2])
    expect(m.datasets).toEqual(['d'])
  })
  for (const [what, bytes, message] of cases) {
    it(what, () => {
      let error: unknown
      try {
        parseImatrixDat(bytes, 'bad.dat')
      } catch (e) {
        error = e
      }
      expect(error).toBeInstanceOf(WhittleError)
      expect((error as WhittleError).file).toBe('bad.dat')
      expect((error as Error).message).toMatch(message)
    })
  }
})

describe('hostile GGUF imatrix files', () => {
  const f32 = (...v: number[]): Uint8Array => new Uint8Array(Float32Array.from(v).buffer)
  const meta = [
    { key: 'general.type', type: 'string', value: 'imatrix' },
    { key: 'imatrix.datasets', type: 'array', itemType: 'string', value: ['t.txt'] },
    { key: 'imatrix.chunk_count', type: 'u32', value: 1 },
    { key: 'imatrix.chunk_size', type: 'u32', value: 8 },
  ] as const
  async function gguf(
    name: string,
    kv: readonly (typeof meta)[number][],
    tensors: Array<{ name: string; dims: number[]; data: Uint8Array }>,
  ): Promise<string> {
    const file = path.join(tmp, name)
    await writeGguf(file, { kv: [...kv], tensors: tensors.map((t) => ({ ...t, type: 'F32' })) })
    return file
  }
  const sums = { name: 'w.in_sum2', dims: [2], data: f32(1, 2) }
  const counts = { name: 'w.counts', dims: [1], data: f32(8) }

  it('a model GGUF, sums without counts, counts without sums, negative sums, counts of the wrong size, missing keys', async () => {
    const checks: Array<[string, Promise<string>, RegExp]> = [
      [
        'model.gguf',
        gguf('model.gguf', [{ key: 'general.type', type: 'string', value: 'model' }] as never, [sums, counts]),
        /general.type "model", not an importance matrix/,
      ],
      ['nocounts.gguf', gguf('nocounts.gguf', meta, [sums]), /w.in_sum2 has no matching .counts/],
      ['nosums.gguf', gguf('nosums.gguf', meta, [counts]), /w.counts has no matching .in_sum2/],
      ['negative.gguf', gguf('negative.gguf', meta, [{ ...sums, data: f32(1, -2) }, counts]), /w.in_sum2\[1\] is -2/],
      [
        'wrongcounts.gguf',
        gguf('wrongcounts.gguf', meta, [sums, { ...counts, dims: [2], data: f32(8, 8) }]),
        /2 counts for 1 matrices/,
      ],
      ['nokeys.gguf', gguf('nokeys.gguf', meta.slice(0, 2), [sums, counts]), /has no imatrix.chunk_count/],
      ['empty.gguf', gguf('empty.gguf', meta, []), /holds no .in_sum2 tensors/],
    ]
    for (const [name, made, message] of checks) {
      const file = await made
      const e = await readImatrixGguf(file).then(
        () => null,
        (x: unknown) => x,
      )
      expect(e, name).toBeInstanceOf(WhittleError)
      expect((e as WhittleError).file, name).toBe(file)
      expect((e as Error).message, name).toMatch(message)
    }
  })

  it('a missing file is not-found', async () => {
    await expect(readImatrixFile(path.join(tmp, 'nope.gguf'))).rejects.toMatchObject({ code: 'not-found' })
  })
})
