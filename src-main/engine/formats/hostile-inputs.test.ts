// The minimal inputs of each class of reader fault the hardening issue found, each of which must end in a
// WhittleError of the right code naming the file: a tokenizer.json that loads but throws on encode, GPTQ and
// compressed-tensors parts of the wrong dtype or shape, and headers over the caps of limits.ts (refused at
// once, before any parsing work). Each valid twin opens, so every refusal is of the fault alone.

import { mkdirSync, truncateSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { tokenizeForEval } from '../eval/tokenize-text'
import { readGguf } from './gguf'
import { writeGguf } from './gguf-writer'
import {
  MAX_CONFIG_JSON_BYTES,
  MAX_GGUF_KVS,
  MAX_GGUF_METADATA_BYTES,
  MAX_GGUF_TOKENIZER_ITEMS,
  MAX_INDEX_JSON_BYTES,
  MAX_TENSORS,
  MAX_TOKENIZER_JSON_BYTES,
} from './limits'
import { openModelFiles } from './open'
import { readTensorF32 } from './read'
import { readSafetensors } from './safetensors'
import { writeSafetensors, type SafetensorsTensorInput } from './safetensors-writer'
import { expectWhittleError, f16Bits, tempFolder } from './testing/temp-files-and-errors'
import { encodeText, loadTokenizer } from './tokenizer'
import type { DType, ModelFiles } from './types'

const { dir, cleanup } = tempFolder('whittle-hostile-')
afterAll(cleanup)
let counter = 0
const fresh = (name: string): string => {
  const d = join(dir, `${name}-${counter++}`)
  mkdirSync(d)
  return d
}

// --- tokenizer.json ---------------------------------------------------------------------------------

/**
 * A word-level tokenizer small enough to write inline. Its vocabulary covers every word the tests and the
 * loader's probe encode (the library answers an unknown word with an undefined id, which the loader refuses).
 */
function tokenizerJson(postProcessor: unknown): string {
  return JSON.stringify({
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [],
    normalizer: null,
    pre_tokenizer: { type: 'Whitespace' },
    post_processor: postProcessor,
    decoder: null,
    model: {
      type: 'WordLevel',
      vocab: { hello: 0, there: 1, '[UNK]': 2, Hello: 3, ',': 4, world: 5, '.': 6, '123': 7 },
      unk_token: '[UNK]',
    },
  })
}

function tokenizerFolder(postProcessor: unknown): string {
  const d = fresh('tok')
  writeFileSync(join(d, 'tokenizer.json'), tokenizerJson(postProcessor))
  return d
}

const asModel = (d: string): ModelFiles => ({
  format: 'safetensors',
  path: d,
  files: [],
  tensors: [],
  metadata: {},
  config: { bos_token_id: 7 },
  generationConfig: null,
  tokenizerPath: join(d, 'tokenizer.json'),
  sizeOnDisk: 0,
})

describe('tokenizer.json through the tokenizer library', () => {
  // `single` must be a list of pieces; a number loads, then throws a TypeError inside the library on encode.
  const malformed = { type: 'TemplateProcessing', single: 5, pair: [], special_tokens: {} }

  it('a valid tokenizer encodes in the parser worker (control)', async () => {
    const d = tokenizerFolder(null)
    expect(Array.from(await encodeText(d, 'hello there hello'))).toEqual([0, 1, 0])
    expect(Array.from(await tokenizeForEval(asModel(d), 'hello world'))).toEqual([7, 0, 5])
  })

  it('a malformed post_processor is a config error naming tokenizer.json, on load and on encode', async () => {
    const d = tokenizerFolder(malformed)
    const file = join(d, 'tokenizer.json')
    await expectWhittleError(() => loadTokenizer(d), 'config', file, 'encode')
    await expectWhittleError(() => encodeText(d, 'hello'), 'config', file, 'encode')
    await expectWhittleError(() => tokenizeForEval(asModel(d), 'hello'), 'config', file, 'encode')
  })

  it('a tokenizer the library cannot build is an unsupported error naming tokenizer.json', async () => {
    const d = tokenizerFolder({ type: 'Sequence', processors: 3 })
    await expectWhittleError(() => encodeText(d, 'hello'), 'unsupported', join(d, 'tokenizer.json'), 'cannot build')
  })

  it(`a tokenizer.json over ${MAX_TOKENIZER_JSON_BYTES} bytes is refused before it is read`, async () => {
    const d = tokenizerFolder(null)
    truncateSync(join(d, 'tokenizer.json'), MAX_TOKENIZER_JSON_BYTES + 1) // sparse: costs no disk or time
    await expectWhittleError(() => encodeText(d, 'hello'), 'config', join(d, 'tokenizer.json'), 'too large')
  })
})

// --- GPTQ and compressed-tensors ----------------------------------------------------------------------

type Part = { dtype: DType; shape: number[] }

function zeros(p: Part, fill?: (i: number) => number): Uint8Array {
  const n = p.shape.reduce((a, b) => a * b, 1)
  const size = { I32: 4, F16: 2, F32: 4, U8: 1, I64: 8, BF16: 2 }[p.dtype as 'I32'] ?? 4
  const bytes = new Uint8Array(n * size)
  if (fill) {
    const view = new DataView(bytes.buffer)
    for (let i = 0; i < n; i++) {
      if (p.dtype === 'I32') view.setInt32(i * 4, fill(i), true)
      else if (p.dtype === 'F16') view.setUint16(i * 2, fill(i), true)
      else if (p.dtype === 'I64') view.setBigInt64(i * 8, BigInt(fill(i)), true)
    }
  }
  return bytes
}

async function packedFolder(
  quantization: Record<string, unknown>,
  parts: Record<string, Part & { fill?: (i: number) => number }>,
): Promise<{ d: string; file: string }> {
  const d = fresh('packed')
  writeFileSync(
    join(d, 'config.json'),
    JSON.stringify({ architectures: ['LlamaForCausalLM'], quantization_config: quantization }),
  )
  const file = join(d, 'model.safetensors')
  const tensors: SafetensorsTensorInput[] = Object.entries(parts).map(([suffix, p]) => ({
    name: `model.layers.0.mlp.up_proj.${suffix}`,
    dtype: p.dtype,
    shape: p.shape,
    data: zeros(p, p.fill),
  }))
  await writeSafetensors(file, tensors)
  return { d, file }
}

// 8 outputs, 32 inputs, 4 bits, groups of 16: qweight [32·4/32, 8], qzeros [2, 8·4/32], scales [2, 8], g_idx [32].
const GPTQ = { quant_method: 'gptq', bits: 4, group_size: 16 }
const ONE_F16 = f16Bits(1)
const gptqParts = (): Record<string, Part & { fill?: (i: number) => number }> => ({
  qweight: { dtype: 'I32', shape: [4, 8] },
  qzeros: { dtype: 'I32', shape: [2, 1] },
  scales: { dtype: 'F16', shape: [2, 8], fill: () => ONE_F16 },
  g_idx: { dtype: 'I32', shape: [32], fill: (i) => Math.floor(i / 16) },
})

describe('GPTQ parts are checked for dtype and shape before use', () => {
  it('a valid module opens as its F32 weight (control)', async () => {
    const { d } = await packedFolder(GPTQ, gptqParts())
    const files = await openModelFiles(d)
    const w = files.tensors.find((t) => t.name === 'model.layers.0.mlp.up_proj.weight')!
    expect(w.shape).toEqual([8, 32])
    // GPTQ v1 stores zero − 1: stored 0 is zero point 1, so code 0 at scale 1 decodes to −1.
    expect(new Set(await readTensorF32(w))).toEqual(new Set([-1]))
  })

  for (const dtype of ['U8', 'F16', 'I64'] as DType[]) {
    it(`a g_idx of ${dtype} is a format error naming the file, the tensor and the dtypes`, async () => {
      const parts = gptqParts()
      parts.g_idx = { dtype, shape: [32] }
      const { d, file } = await packedFolder(GPTQ, parts)
      await expectWhittleError(() => openModelFiles(d), 'format', file, 'up_proj.g_idx', dtype, 'expected I32')
    })
  }

  it('scales of the wrong shape are refused, naming the expected shape', async () => {
    const parts = gptqParts()
    parts.scales = { dtype: 'F16', shape: [2, 7] }
    const { d, file } = await packedFolder(GPTQ, parts)
    await expectWhittleError(() => openModelFiles(d), 'format', file, 'up_proj.scales', '[2, 7]', 'expected [2, 8]')
  })

  it('scales of F32, qweight of F16 and a 1-D qzeros are refused', async () => {
    const cases: [string, Part][] = [
      ['scales', { dtype: 'F32', shape: [2, 8] }],
      ['qweight', { dtype: 'F16', shape: [4, 8] }],
      ['qzeros', { dtype: 'I32', shape: [2] }],
    ]
    for (const [part, bad] of cases) {
      const parts = gptqParts()
      parts[part] = bad
      const { d, file } = await packedFolder(GPTQ, parts)
      await expectWhittleError(() => openModelFiles(d), 'format', file, `up_proj.${part}`)
    }
  })

  it('a g_idx whose length disagrees with qweight, or groups too few for group_size, are refused', async () => {
    const parts = gptqParts()
    parts.g_idx = { dtype: 'I32', shape: [24] } // 24 inputs at 4 bits fill 3 words, qweight holds 4
    const a = await packedFolder(GPTQ, parts)
    await expectWhittleError(() => openModelFiles(a.d), 'format', a.file, 'up_proj.qweight', 'expected [3, 8]')
    const noIdx = gptqParts()
    delete noIdx.g_idx
    const b = await packedFolder({ ...GPTQ, group_size: 8 }, noIdx) // 32 inputs / 8 = 4 groups, 2 stored
    await expectWhittleError(() => openModelFiles(b.d), 'format', b.file, 'up_proj.scales', 'groups')
  })
})

// 8 outputs, 32 inputs, 4 bits, symmetric, groups of 16: weight_packed [8, 4], weight_scale [8, 2], weight_shape [2].
const CT = {
  quant_method: 'compressed-tensors',
  format: 'pack-quantized',
  config_groups: {
    group_0: { targets: ['Linear'], weights: { num_bits: 4, group_size: 16, symmetric: true, type: 'int' } },
  },
}
const ctParts = (): Record<string, Part & { fill?: (i: number) => number }> => ({
  weight_packed: { dtype: 'I32', shape: [8, 4] },
  weight_scale: { dtype: 'F16', shape: [8, 2], fill: () => ONE_F16 },
  weight_shape: { dtype: 'I32', shape: [2], fill: (i) => [8, 32][i] },
})

describe('compressed-tensors parts are checked for dtype and shape before use', () => {
  it('a valid module opens as its F32 weight, weight_shape in I32 or I64 (control)', async () => {
    for (const shapeDType of ['I32', 'I64'] as DType[]) {
      const parts = ctParts()
      parts.weight_shape = { dtype: shapeDType, shape: [2], fill: (i) => [8, 32][i] }
      const { d } = await packedFolder(CT, parts)
      const w = (await openModelFiles(d)).tensors.find((t) => t.name === 'model.layers.0.mlp.up_proj.weight')!
      expect(w.shape).toEqual([8, 32])
      // Symmetric 4-bit codes are stored offset by 8: code 0 at scale 1 decodes to −8.
      expect(new Set(await readTensorF32(w))).toEqual(new Set([-8]))
    }
  })

  const wrong: [string, Part, string][] = [
    ['weight_packed', { dtype: 'F32', shape: [8, 4] }, 'expected I32'],
    ['weight_shape', { dtype: 'F32', shape: [2] }, 'expected I32 or I64'],
    ['weight_scale', { dtype: 'I32', shape: [8, 2] }, 'expected F32 or F16 or BF16'],
    ['weight_zero_point', { dtype: 'F16', shape: [1, 2] }, 'expected I32'],
    ['weight_g_idx', { dtype: 'U8', shape: [32] }, 'expected I32'],
    ['weight_shape', { dtype: 'I32', shape: [3] }, 'expected [2]'],
    ['weight_scale', { dtype: 'F16', shape: [7, 2] }, 'expected [8, *]'],
    ['weight_g_idx', { dtype: 'I32', shape: [16] }, 'expected [32]'],
  ]
  for (const [part, bad, says] of wrong) {
    it(`${part} as ${bad.dtype} [${bad.shape.join(', ')}] is a format error naming the file and tensor`, async () => {
      const parts = ctParts()
      parts[part] = bad
      const { d, file } = await packedFolder(CT, parts)
      await expectWhittleError(() => openModelFiles(d), 'format', file, `up_proj.${part}`, says)
    })
  }

  it('a weight_shape holding a zero or negative size is refused', async () => {
    const parts = ctParts()
    parts.weight_shape = { dtype: 'I32', shape: [2], fill: (i) => [-8, 32][i] }
    const { d, file } = await packedFolder(CT, parts)
    await expectWhittleError(() => openModelFiles(d), 'format', file, 'weight_shape', 'not two positive sizes')
  })
})

// --- caps -------------------------------------------------------------------------------------------

/** Resolves `run`'s rejection and how long it took. */
async function timed(run: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now()
  await run().catch(() => {})
  return performance.now() - t0
}

describe('inputs over the caps of limits.ts are refused at once', () => {
  it(`a safetensors header listing more than ${MAX_TENSORS} tensors`, async () => {
    // Minimal entries, so the header is small but the count is over: the byte scan refuses it before parsing.
    const parts: string[] = []
    for (let i = 0; i <= MAX_TENSORS; i++) parts.push(`"${i}":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}`)
    const header = new TextEncoder().encode(`{${parts.join(',')}}`)
    const buf = new Uint8Array(8 + header.length)
    new DataView(buf.buffer).setBigUint64(0, BigInt(header.length), true)
    buf.set(header, 8)
    const file = join(fresh('cap'), 'many.safetensors')
    writeFileSync(file, buf)
    await expectWhittleError(() => readSafetensors(file), 'format', file, String(MAX_TENSORS))
  })

  it(`an index over ${MAX_INDEX_JSON_BYTES} bytes and a config.json over ${MAX_CONFIG_JSON_BYTES}`, async () => {
    const d = fresh('cap')
    writeFileSync(join(d, 'model.safetensors.index.json'), '{}')
    truncateSync(join(d, 'model.safetensors.index.json'), MAX_INDEX_JSON_BYTES + 1)
    writeFileSync(join(d, 'config.json'), '{}')
    await expectWhittleError(() => openModelFiles(d), 'format', join(d, 'model.safetensors.index.json'), 'too large')
    truncateSync(join(d, 'config.json'), MAX_CONFIG_JSON_BYTES + 1)
    await expectWhittleError(() => openModelFiles(d), 'config', join(d, 'config.json'), 'too large')
  })

  /** A GGUF v3 header claiming `tensors` and `kvs`, padded with `room` zero bytes so the claims fit the file. */
  function ggufClaiming(tensors: bigint, kvs: bigint, room: number): string {
    const buf = new Uint8Array(24 + room)
    buf.set(new TextEncoder().encode('GGUF'))
    const v = new DataView(buf.buffer)
    v.setUint32(4, 3, true)
    v.setBigInt64(8, tensors, true)
    v.setBigInt64(16, kvs, true)
    const file = join(fresh('cap'), 'claims.gguf')
    writeFileSync(file, buf)
    return file
  }

  it(`a GGUF claiming more than ${MAX_TENSORS} tensors or ${MAX_GGUF_KVS} key/values, in a file with room for them`, async () => {
    const manyTensors = ggufClaiming(BigInt(MAX_TENSORS + 1), 0n, (MAX_TENSORS + 1) * 24)
    await expectWhittleError(() => readGguf(manyTensors), 'format', manyTensors, 'tensors', String(MAX_TENSORS))
    const manyKvs = ggufClaiming(0n, BigInt(MAX_GGUF_KVS + 1), (MAX_GGUF_KVS + 1) * 13)
    await expectWhittleError(() => readGguf(manyKvs), 'format', manyKvs, 'KVs', String(MAX_GGUF_KVS))
    expect(await timed(() => readGguf(manyTensors))).toBeLessThan(1000)
  })

  it(`GGUF metadata over ${MAX_GGUF_METADATA_BYTES} bytes outside tokenizer.*, where the same bytes inside it are fine`, async () => {
    const long = 'x'.repeat(MAX_GGUF_METADATA_BYTES + 1)
    const d = fresh('cap')
    const bad = join(d, 'bad.gguf'),
      good = join(d, 'good.gguf')
    await writeGguf(bad, { kv: [{ key: 'general.description', type: 'string', value: long }], tensors: [] })
    await writeGguf(good, { kv: [{ key: 'tokenizer.chat_template', type: 'string', value: long }], tensors: [] })
    await expectWhittleError(() => readGguf(bad), 'format', bad, 'general.description', String(MAX_GGUF_METADATA_BYTES))
    expect(((await readGguf(good)).metadata['tokenizer.chat_template'] as string).length).toBe(long.length)
    // Many small KVs add up to the same cap.
    const many = join(d, 'many.gguf')
    const piece = 'y'.repeat(1000)
    await writeGguf(many, {
      kv: Array.from({ length: 1100 }, (_, i) => ({ key: `general.k${i}`, type: 'string' as const, value: piece })),
      tensors: [],
    })
    await expectWhittleError(() => readGguf(many), 'format', many, String(MAX_GGUF_METADATA_BYTES))
  })

  it(`a GGUF tokenizer array of more than ${MAX_GGUF_TOKENIZER_ITEMS} items`, async () => {
    const file = join(fresh('cap'), 'vocab.gguf')
    await writeGguf(file, {
      kv: [
        {
          key: 'tokenizer.ggml.token_type',
          type: 'array',
          itemType: 'u8',
          value: new Uint8Array(MAX_GGUF_TOKENIZER_ITEMS + 1),
        },
      ],
      tensors: [],
    })
    await expectWhittleError(
      () => readGguf(file),
      'format',
      file,
      'tokenizer.ggml.token_type',
      String(MAX_GGUF_TOKENIZER_ITEMS),
    )
  })
})
