// llama.cpp's loading rules (loadability.ts) on every GGUF export type and mix, on the files llama.cpp
// itself wrote (the golden files, which it must accept), and on hostile variations of an export, each of
// which must be rejected under the rule it breaks. Plus @huggingface/gguf, an independent parser, reading
// every export with the same tensor names, shapes, types and offsets as Whittle's reader.

import { readdirSync } from 'node:fs'
import { appendFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { crc32 } from 'node:zlib'
import { gguf as hfGguf } from '@huggingface/gguf'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { GGUF_EXPORT_TYPES } from '../../../contract/gguf-export-types'
import { isWhittleError } from '../../errors'
import { readGguf, readGgufArray, type GgufFile } from '../../formats/gguf'
import { writeGguf, type GgufKv, type GgufScalarType } from '../../formats/gguf-writer'
import { ggmlTypeById } from '../../formats/ggml-types'
import { readTensorBytes } from '../../formats/read'
import { closeFile } from '../../io/ranged-file'
import { loadModel, type LoadedModel } from '../../model/loaded-model'
import { WorkerPool } from '../../pool/worker-pool'
import { hasShared, shared, SKIP_SHARED } from '../../testing/shared-data'
import { exportGguf } from './export-gguf'
import { ggufLoadabilityProblems, GgufNotLoadableError, type LoadabilityRule } from './loadability'
import { LLAMA_FILE_TYPE } from './type-policy'
import { verifyGgufExport } from './verify-gguf'

let pool: WorkerPool
let tmp: string
beforeAll(async () => {
  pool = await WorkerPool.create({ threads: 0 })
  tmp = await mkdtemp(path.join(os.tmpdir(), 'whittle-gguf-loadable-'))
})
afterAll(async () => {
  pool?.close()
  await rm(tmp, { recursive: true, force: true })
})

async function problemsOf(file: string): Promise<LoadabilityRule[]> {
  try {
    return (await ggufLoadabilityProblems(await readGguf(file))).map((p) => p.rule)
  } finally {
    closeFile(file)
  }
}

/** A file's KVs as the writer takes them, long arrays read back in full. */
async function kvsOf(g: GgufFile): Promise<GgufKv[]> {
  const out: GgufKv[] = []
  for (const [key, type] of Object.entries(g.kvTypes)) {
    if (type === 'array') {
      const value = (await readGgufArray(g.path, key, g)) as ArrayLike<string | number>
      out.push({ key, type: 'array', itemType: g.arrays[key].itemType as GgufScalarType, value })
    } else out.push({ key, type, value: g.metadata[key] as number | string | boolean })
  }
  return out
}

/** Rewrites `source` with its KVs (and optionally tensor names) edited: a file only a hostile writer makes. */
async function variant(
  source: string,
  name: string,
  editKv: (kv: GgufKv[]) => GgufKv[],
  rename: (tensor: string) => string = (t) => t,
): Promise<string> {
  const g = await readGguf(source)
  const kv = editKv(await kvsOf(g))
  const tensors = await Promise.all(
    g.infos.map(async (info, i) => ({
      name: rename(info.name),
      type: info.ggmlType,
      dims: info.dims,
      data: await readTensorBytes(g.tensors[i], 0, g.tensors[i].byteLength),
    })),
  )
  closeFile(source)
  const out = path.join(tmp, `${name}.gguf`)
  await writeGguf(out, { kv, tensors })
  return out
}

const setKv = (key: string, entry: GgufKv | null) => (kv: GgufKv[]) => {
  const rest = kv.filter((k) => k.key !== key)
  return entry ? [...rest, entry] : rest
}

/** Absolute position of a tensor info's u64 offset field in the header. */
function offsetField(bytes: Buffer, name: string, nDims: number): number {
  const nameBytes = Buffer.from(name, 'utf8')
  const len = Buffer.alloc(8)
  len.writeBigUInt64LE(BigInt(nameBytes.length))
  const at = bytes.indexOf(Buffer.concat([len, nameBytes]))
  if (at < 0) throw new Error(`no tensor info for ${name}`)
  return at + 8 + nameBytes.length + 4 + 8 * nDims + 4
}

describe.skipIf(!hasShared)(`GGUF loadability (${hasShared ? 'reference data present' : SKIP_SHARED})`, () => {
  let model: LoadedModel
  const exported = new Map<string, string>()
  beforeAll(async () => {
    model = await loadModel(shared('models/stories260K'))
  })

  it('every export type and mix writes a file llama.cpp loads, with its file type, read alike by @huggingface/gguf', async () => {
    for (const type of GGUF_EXPORT_TYPES) {
      const out = path.join(tmp, `stories260K-${type}.gguf`)
      await exportGguf(pool, model, out, { type }) // verification includes the loadability rules
      exported.set(type, out)
      expect(await problemsOf(out), type).toEqual([])

      const mine = await readGguf(out)
      closeFile(out)
      expect(mine.metadata['general.file_type'], type).toBe(LLAMA_FILE_TYPE[type])
      const theirs = await hfGguf(out, { allowLocalFile: true })
      expect(theirs.tensorInfos.map((t) => t.name)).toEqual(mine.infos.map((i) => i.name))
      expect(theirs.tensorInfos.map((t) => t.shape.map(Number))).toEqual(mine.infos.map((i) => i.dims))
      expect(theirs.tensorInfos.map((t) => Number(t.dtype))).toEqual(mine.infos.map((i) => i.ggmlType))
      expect(theirs.tensorInfos.map((t) => Number(t.offset))).toEqual(mine.infos.map((i) => i.relativeOffset))
      expect(Number(theirs.tensorDataOffset)).toBe(mine.dataStart)
      const meta = theirs.metadata as Record<string, unknown>
      expect(meta['general.file_type']).toBe(LLAMA_FILE_TYPE[type])
      expect(meta['tokenizer.ggml.tokens']).toHaveLength(model.arch.vocabSize)
    }
  })

  it("accepts every file llama.cpp wrote (the golden files), so the rules are llama.cpp's and no stricter", async () => {
    const golden = shared('reference/gguf-golden')
    const files = [
      ...readdirSync(golden)
        .filter((f) => f.endsWith('.gguf'))
        .map((f) => path.join(golden, f)),
      ...readdirSync(path.join(golden, 'imatrix'))
        .filter((f) => /^small-llama.*\.gguf$/.test(f))
        .map((f) => path.join(golden, 'imatrix', f)),
      shared('models/stories260K-gguf/stories260K.gguf'),
    ]
    expect(files.length).toBeGreaterThan(15)
    let withTokenizer = 0
    for (const f of files) {
      const hasTokenizer = Object.hasOwn((await readGguf(f)).kvTypes, 'tokenizer.ggml.tokens')
      closeFile(f)
      // The pure golden files hold weights only (llama-quantize needs no vocabulary); the imatrix ones and
      // stories260K.gguf carry a whole tokenizer.
      expect(await problemsOf(f), path.basename(f)).toEqual([])
      if (hasTokenizer) withTokenizer++
    }
    expect(withTokenizer).toBeGreaterThan(2)
  })

  describe('hostile variations of an export are rejected under the rule they break', () => {
    const q4km = (): string => exported.get('Q4_K_M') ?? path.join(tmp, 'stories260K-Q4_K_M.gguf')
    const q8 = (): string => exported.get('Q8_0') ?? path.join(tmp, 'stories260K-Q8_0.gguf')
    const cases: {
      name: string
      edit: (kv: GgufKv[]) => GgufKv[]
      rename?: (t: string) => string
      rule: LoadabilityRule
    }[] = [
      { name: 'no-qnt-version', edit: setKv('general.quantization_version', null), rule: 'quantization-version' },
      {
        name: 'qnt-version-1',
        edit: setKv('general.quantization_version', { key: 'general.quantization_version', type: 'u32', value: 1 }),
        rule: 'quantization-version',
      },
      {
        name: 'file-type-string',
        edit: setKv('general.file_type', { key: 'general.file_type', type: 'string', value: 'Q4_K_M' }),
        rule: 'file-type',
      },
      {
        name: 'file-type-f32',
        edit: setKv('general.file_type', { key: 'general.file_type', type: 'u32', value: 0 }),
        rule: 'file-type',
      },
      {
        name: 'file-type-unknown',
        edit: setKv('general.file_type', { key: 'general.file_type', type: 'u32', value: 99 }),
        rule: 'file-type',
      },
      {
        name: 'alignment-u16',
        edit: (kv) => [...kv, { key: 'general.alignment', type: 'u16', value: 32 }],
        rule: 'alignment',
      },
      {
        name: 'short-scores',
        edit: (kv) =>
          kv.map((k) =>
            k.key === 'tokenizer.ggml.scores' && k.type === 'array' && k.itemType !== 'array'
              ? { ...k, value: Array.from(k.value).slice(1) }
              : k,
          ),
        rule: 'tokenizer',
      },
      {
        name: 'long-token-types',
        edit: (kv) =>
          kv.map((k) =>
            k.key === 'tokenizer.ggml.token_type' && k.type === 'array' && k.itemType !== 'array'
              ? { ...k, value: [...Array.from(k.value), 1] }
              : k,
          ),
        rule: 'tokenizer',
      },
      {
        name: 'token-types-u8',
        edit: (kv) =>
          kv.map((k) =>
            k.key === 'tokenizer.ggml.token_type' && k.type === 'array' && k.itemType !== 'array'
              ? { ...k, itemType: 'u8' as const }
              : k,
          ),
        rule: 'tokenizer',
      },
      {
        name: 'gpt2-no-merges',
        edit: setKv('tokenizer.ggml.model', { key: 'tokenizer.ggml.model', type: 'string', value: 'gpt2' }),
        rule: 'tokenizer',
      },
      {
        name: 'gpt2-bad-merge',
        edit: (kv) => [
          ...setKv('tokenizer.ggml.model', { key: 'tokenizer.ggml.model', type: 'string', value: 'gpt2' })(kv),
          { key: 'tokenizer.ggml.merges', type: 'array', itemType: 'string', value: ['a b', 'ab'] },
        ],
        rule: 'tokenizer',
      },
      {
        name: 'bos-outside',
        edit: setKv('tokenizer.ggml.bos_token_id', { key: 'tokenizer.ggml.bos_token_id', type: 'u32', value: 512 }),
        rule: 'tokenizer',
      },
      { name: 'no-tokens', edit: setKv('tokenizer.ggml.tokens', null), rule: 'tokenizer' },
      {
        name: 'block-count',
        edit: setKv('llama.block_count', { key: 'llama.block_count', type: 'u32', value: 4 }),
        rule: 'hparams',
      },
      {
        name: 'embedding-length',
        edit: setKv('llama.embedding_length', { key: 'llama.embedding_length', type: 'u32', value: 128 }),
        rule: 'hparams',
      },
      {
        name: 'long-name',
        edit: (kv) => kv,
        rename: (t) => (t === 'output_norm.weight' ? `${'x'.repeat(57)}.weight` : t),
        rule: 'tensor-info',
      },
    ]
    for (const c of cases) {
      it(`${c.name}: ${c.rule}`, async () => {
        const file = await variant(q4km(), c.name, c.edit, c.rename)
        expect(await problemsOf(file)).toEqual([c.rule])
      })
    }

    it('tensor data out of order (two offsets swapped): tensor-offset', async () => {
      const bytes = await readFile(q8())
      const g = await readGguf(q8())
      closeFile(q8())
      const [a, b] = ['blk.0.attn_q.weight', 'blk.0.attn_output.weight'].map((n) => g.infos.find((i) => i.name === n)!)
      expect(g.tensors[g.infos.indexOf(a)].byteLength).toBe(g.tensors[g.infos.indexOf(b)].byteLength)
      const pa = offsetField(bytes, a.name, a.dims.length)
      const pb = offsetField(bytes, b.name, b.dims.length)
      const oa = bytes.readBigUInt64LE(pa)
      bytes.writeBigUInt64LE(bytes.readBigUInt64LE(pb), pa)
      bytes.writeBigUInt64LE(oa, pb)
      const file = path.join(tmp, 'swapped.gguf')
      await writeFile(file, bytes)
      expect(await problemsOf(file)).toEqual(['tensor-offset']) // Whittle's reader alone accepts it
    })

    it('a gap before the last tensor: tensor-offset; the file cut short: refused by the reader', async () => {
      const bytes = await readFile(q8())
      const g = await readGguf(q8())
      closeFile(q8())
      const last = g.infos[g.infos.length - 1]
      const at = offsetField(bytes, last.name, last.dims.length)
      bytes.writeBigUInt64LE(bytes.readBigUInt64LE(at) + BigInt(g.alignment), at)
      const gap = path.join(tmp, 'gap.gguf')
      await writeFile(gap, bytes)
      await appendFile(gap, Buffer.alloc(g.alignment))
      expect(await problemsOf(gap)).toEqual(['tensor-offset'])

      const cut = path.join(tmp, 'cut.gguf')
      await writeFile(cut, (await readFile(q8())).subarray(0, g.size - 1))
      const e = await problemsOf(cut).catch((err: unknown) => err)
      expect(isWhittleError(e) && ['truncated', 'format'].includes(e.code)).toBe(true)
    })

    it('the export verification refuses such a file with a typed error naming the file and the rule', async () => {
      const file = await variant(q4km(), 'verify-no-qnt-version', setKv('general.quantization_version', null))
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
      const e = await verifyGgufExport(file, intended, undefined, 'shown.gguf').catch((err: unknown) => err)
      expect(e).toBeInstanceOf(GgufNotLoadableError)
      const err = e as GgufNotLoadableError
      expect([err.code, err.file, err.problems.map((p) => p.rule)]).toEqual([
        'format',
        'shown.gguf',
        ['quantization-version'],
      ])
    })
  })
})
