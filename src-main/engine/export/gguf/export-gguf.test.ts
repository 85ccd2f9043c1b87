// GGUF export against files llama.cpp wrote: the golden small-llama quantizations (llama-quantize --pure)
// and stories260K.gguf (convert_hf_to_gguf.py), plus the GGUF -> safetensors inverse and a failure path.

import { mkdtemp, readdir, rm, chmod, writeFile } from 'node:fs/promises'
import { existsSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { readGguf, readGgufArray } from '../../formats/gguf'
import { readTensorBytes } from '../../formats/read'
import { openModelFiles } from '../../formats/open'
import { loadModel } from '../../model/loaded-model'
import { WorkerPool } from '../../pool/worker-pool'
import { WhittleError } from '../../errors'
import { exportGguf } from './export-gguf'
import { exportSafetensorsFromGguf } from './gguf-to-safetensors'

const repoRoot = path.resolve(__dirname, '../../../..')
const shared = path.resolve(repoRoot, '../shared')
const hasShared = existsSync(path.join(shared, 'reference/gguf-golden/small-llama-f32.gguf'))
if (!hasShared) console.warn(`skipping GGUF export tests: ${shared} (shared test data) is absent`)
const golden = path.join(shared, 'reference/gguf-golden')
const storiesHf = path.join(shared, 'models/stories260K')
const storiesGguf = path.join(shared, 'models/stories260K-gguf/stories260K.gguf')

let pool: WorkerPool
let tmp: string
beforeAll(async () => {
  pool = await WorkerPool.create({ threads: 0 })
  tmp = await mkdtemp(path.join(os.tmpdir(), 'whittle-gguf-export-'))
})
afterAll(async () => {
  await pool?.close()
  await rm(tmp, { recursive: true, force: true })
})

async function tensorBytes(file: string): Promise<Map<string, { type: number; dims: string; bytes: Buffer }>> {
  const g = await readGguf(file)
  const out = new Map<string, { type: number; dims: string; bytes: Buffer }>()
  for (const [i, info] of g.infos.entries()) {
    const b = await readTensorBytes(g.tensors[i], 0, g.tensors[i].byteLength)
    out.set(info.name, { type: info.ggmlType, dims: info.dims.join(','), bytes: Buffer.from(b) })
  }
  return out
}

/** Every tensor of `file` matches `reference` in type, dims and bytes. */
async function expectSameTensors(file: string, reference: string): Promise<void> {
  const got = await tensorBytes(file)
  const want = await tensorBytes(reference)
  expect([...got.keys()].sort()).toEqual([...want.keys()].sort())
  for (const [name, w] of want) {
    const g = got.get(name)!
    expect({ name, type: g.type, dims: g.dims }).toEqual({ name, type: w.type, dims: w.dims })
    expect(g.bytes.equals(w.bytes), `${name} bytes`).toBe(true)
  }
}

describe.skipIf(!hasShared)('GGUF export: golden llama-quantize files', () => {
  for (const type of ['Q8_0', 'Q4_0', 'Q4_K', 'Q5_K', 'Q6_K'] as const) {
    it(`HF BF16 -> ${type} reproduces small-llama-${type}.gguf byte for byte`, async () => {
      const model = await loadModel(path.join(golden, 'small-llama-hf-bf16'))
      const out = path.join(tmp, `hf-${type}.gguf`)
      const report = await exportGguf(pool, model, out, { type })
      expect(report.tensors.every((t) => t.fallback === undefined)).toBe(true)
      await expectSameTensors(out, path.join(golden, `small-llama-${type}.gguf`))
    })
    it(`GGUF F32 -> ${type} reproduces small-llama-${type}.gguf byte for byte`, async () => {
      const model = await loadModel(path.join(golden, 'small-llama-f32.gguf'))
      const out = path.join(tmp, `gguf-${type}.gguf`)
      await exportGguf(pool, model, out, { type })
      await expectSameTensors(out, path.join(golden, `small-llama-${type}.gguf`))
      const meta = (await readGguf(out)).metadata
      const ref = (await readGguf(path.join(golden, `small-llama-${type}.gguf`))).metadata
      for (const key of [
        'general.file_type',
        'llama.block_count',
        'llama.attention.head_count_kv',
        'llama.rope.dimension_count',
        'llama.vocab_size',
        'llama.feed_forward_length',
      ]) {
        expect(meta[key], key).toEqual(ref[key])
      }
    })
  }
  it('HF BF16 -> F32 equals small-llama-f32.gguf (names and q/k permutation)', async () => {
    const model = await loadModel(path.join(golden, 'small-llama-hf-bf16'))
    const out = path.join(tmp, 'hf-f32.gguf')
    const report = await exportGguf(pool, model, out, { type: 'F32' })
    expect(report.tensors.every((t) => t.exact)).toBe(true)
    await expectSameTensors(out, path.join(golden, 'small-llama-f32.gguf'))
  })
})

describe.skipIf(!hasShared)('GGUF export: stories260K round trip', () => {
  it("HF -> GGUF F32 matches llama.cpp's own conversion, tokenizer included", async () => {
    const model = await loadModel(storiesHf)
    const out = path.join(tmp, 'stories-f32.gguf')
    await exportGguf(pool, model, out, { type: 'F32' })
    await expectSameTensors(out, storiesGguf)
    const mine = await readGguf(out)
    const theirs = await readGguf(storiesGguf)
    for (const key of [
      'tokenizer.ggml.model',
      'tokenizer.ggml.bos_token_id',
      'tokenizer.ggml.eos_token_id',
      'tokenizer.ggml.unknown_token_id',
      'llama.embedding_length',
      'llama.block_count',
      'llama.feed_forward_length',
      'llama.attention.head_count',
      'llama.attention.head_count_kv',
      'llama.rope.dimension_count',
    ]) {
      expect(mine.metadata[key], key).toEqual(theirs.metadata[key])
    }
    for (const key of ['tokenizer.ggml.tokens', 'tokenizer.ggml.token_type', 'tokenizer.ggml.scores']) {
      expect(Array.from((await readGgufArray(out, key, mine)) as ArrayLike<unknown>), key).toEqual(
        Array.from((await readGgufArray(storiesGguf, key, theirs)) as ArrayLike<unknown>),
      )
    }
    expect(mine.metadata['tokenizer.ggml.add_bos_token']).toBe(true)
  })

  it('GGUF -> safetensors gives back the original HF weights exactly', async () => {
    const model = await loadModel(storiesGguf)
    const dir = path.join(tmp, 'stories-hf')
    const report = await exportSafetensorsFromGguf(model, dir)
    expect(report.tensors.every((t) => !t.dequantized)).toBe(true)
    const back = await openModelFiles(dir)
    const original = await openModelFiles(storiesHf)
    const backByName = new Map(back.tensors.map((t) => [t.name, t]))
    for (const t of original.tensors) {
      const b = backByName.get(t.name)
      expect(b, t.name).toBeDefined()
      expect(b!.shape).toEqual(t.shape)
      const x = Buffer.from(await readTensorBytes(t, 0, t.byteLength))
      const y = Buffer.from(await readTensorBytes(b!, 0, b!.byteLength))
      expect(x.equals(y), t.name).toBe(true)
    }
    // stories260K ties its head; llama.cpp stored it as output.weight, which comes back as lm_head.
    const lmHead = backByName.get('lm_head.weight')!
    const embed = original.tensors.find((t) => t.name === 'model.embed_tokens.weight')!
    expect(
      Buffer.from(await readTensorBytes(lmHead, 0, lmHead.byteLength)).equals(
        Buffer.from(await readTensorBytes(embed, 0, embed.byteLength)),
      ),
    ).toBe(true)
    const reloaded = await loadModel(dir)
    expect(reloaded.arch.heads).toBe(8)
    expect(reloaded.arch.kvHeads).toBe(4)
  })

  it('Q8_0 keeps the 172-column ffn_down in F16 and says so', async () => {
    const model = await loadModel(storiesHf)
    const report = await exportGguf(pool, model, path.join(tmp, 'stories-q8.gguf'), { type: 'Q8_0' })
    const down = report.tensors.find((t) => t.name === 'blk.0.ffn_down.weight')!
    expect(down.type).toBe('F16')
    expect(down.fallback).toMatch(/172/)
    expect(report.tensors.find((t) => t.name === 'blk.0.ffn_up.weight')!.type).toBe('Q8_0')
  })
})

describe.skipIf(!hasShared)('GGUF export: failures', () => {
  it('a read-only destination gives a WhittleError and leaves nothing behind', async () => {
    const dir = path.join(tmp, 'readonly')
    const { mkdir } = await import('node:fs/promises')
    await mkdir(dir)
    await chmod(dir, 0o555)
    // root ignores permission bits; /proc refuses new files whoever asks.
    const probe = path.join(dir, 'probe')
    const rootCanWrite = await writeFile(probe, '').then(
      () => true,
      () => false,
    )
    if (rootCanWrite) await rm(probe)
    const target = rootCanWrite ? '/proc/whittle-export-test.gguf' : path.join(dir, 'model.gguf')
    const model = await loadModel(path.join(golden, 'small-llama-f32.gguf'))
    const err = await exportGguf(pool, model, target, { type: 'Q8_0' }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(WhittleError)
    expect((err as WhittleError).message).toContain(path.dirname(target))
    expect(existsSync(target)).toBe(false)
    expect(await readdir(rootCanWrite ? dir : dir)).toEqual([])
    await chmod(dir, 0o755)
  })

  it('refuses an existing destination and a non-Llama export type', async () => {
    const model = await loadModel(path.join(golden, 'small-llama-f32.gguf'))
    const existing = path.join(tmp, 'exists.gguf')
    await writeFile(existing, 'x')
    await expect(exportGguf(pool, model, existing, { type: 'Q8_0' })).rejects.toThrow(/already exists/)
    await expect(exportGguf(pool, model, path.join(tmp, 'bad.gguf'), { type: 'IQ2_XXS' as never })).rejects.toThrow(
      WhittleError,
    )
  })
})
