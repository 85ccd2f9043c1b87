// Minimal reproducers of what the fuzz harness (bench/fuzz, `npm run fuzz`) found: each input once gave an
// untyped error (TypeError, DataCloneError, RangeError) instead of a WhittleError, or opened into data that
// cannot cross IPC. Every one must now either open into plain data or fail with a WhittleError.

import { copyFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { rtnQuantize } from '../compress/methods/rtn'
import type { UniformGridRecord } from '../compress/quant/record'
import { isBlockLinear } from '../compress/recipe/targets'
import { WhittleError } from '../errors'
import { tokenizeForEval } from '../eval/tokenize-text'
import { exportCompressedTensors } from '../export/compressed-tensors-export'
import { exportGptq } from '../export/gptq-export'
import { closeAllFiles } from '../io/ranged-file'
import { loadModel } from '../model/loaded-model'
import { withReplacements } from '../model/model-view'
import { hasShared, shared, SKIP_SHARED } from '../testing/shared-data'
import { readTensorF32 } from './read'
import { tempFolder } from './testing/temp-files-and-errors'

const DEMO = join(__dirname, '../../../resources/demo/stories260K')
const { dir, cleanup } = tempFolder('whittle-fuzz-regressions-')
afterAll(cleanup)

let counter = 0
/** A copy of `from` (a model folder) with some files replaced. */
function variant(from: string, files: Record<string, string | Uint8Array>): string {
  const to = join(dir, `case-${counter++}`)
  copyFolder(from, to)
  for (const [name, content] of Object.entries(files)) writeFileSync(join(to, name), content)
  return to
}

function copyFolder(from: string, to: string): void {
  mkdirSync(to, { recursive: true })
  for (const n of readdirSync(from)) copyFileSync(join(from, n), join(to, n))
}

/** Outcome of an action: the value, a WhittleError, or (the bug) anything else thrown. */
async function settle<T>(run: () => Promise<T>): Promise<{ value?: T; typed?: WhittleError; untyped?: unknown }> {
  try {
    return { value: await run() }
  } catch (e) {
    return e instanceof WhittleError ? { typed: e } : { untyped: e }
  } finally {
    closeAllFiles()
  }
}

interface StEntry {
  dtype: string
  shape: number[]
  data_offsets: [number, number]
}

function readSt(file: string): { header: Record<string, StEntry>; data: Uint8Array } {
  const bytes = new Uint8Array(readFileSync(file))
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true))
  return { header: JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n))), data: bytes.subarray(8 + n) }
}

/** Serializes a header whose keys may be "__proto__" and friends (kept as own keys, in order). */
function writeSt(
  entries: [string, unknown][],
  data: Uint8Array,
  edit: (json: string) => string = (j) => j,
): Uint8Array {
  const json = new TextEncoder().encode(
    edit(`{${entries.map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`).join(',')}}`),
  )
  const out = new Uint8Array(8 + json.length + data.length)
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true)
  out.set(json, 8)
  out.set(data, 8 + json.length)
  return out
}

/** The demo's model.safetensors with one tensor renamed. */
function renamed(from: string, to: string): Uint8Array {
  const { header, data } = readSt(join(DEMO, 'model.safetensors'))
  return writeSt(
    Object.entries(header).map(([k, v]) => [k === from ? to : k, v]),
    data,
  )
}

function expectPlainModelOrTyped(r: Awaited<ReturnType<typeof settle<Awaited<ReturnType<typeof loadModel>>>>>): void {
  expect(r.untyped, String(r.untyped)).toBeUndefined()
  if (!r.value) return
  // What the UI receives over IPC and JSON must be plain data.
  expect(() => structuredClone(r.value!.summary)).not.toThrow()
  expect(() => structuredClone(r.value!.tensors)).not.toThrow()
  for (const t of r.value.tensors) {
    expect(typeof t.role).toBe('string')
    expect(t.layer === null || typeof t.layer === 'number').toBe(true)
  }
}

describe('tensor names that are JavaScript built-ins (fuzz: DataCloneError)', () => {
  const cases: [string, string][] = [
    ['model.layers.2.input_layernorm.weight', 'model.layers.2.toString.weight'],
    ['model.layers.4.post_attention_layernorm.weight', 'model.layers.4.constructor.weight'],
    ['model.layers.0.post_attention_layernorm.weight', 'model.layers.0.hasOwnProperty.weight'],
    ['model.layers.2.input_layernorm.weight', 'model.layers.2.valueOf.weight'],
    ['model.norm.weight', '__proto__'],
  ]
  for (const [from, to] of cases) {
    it(`"${to}" opens into plain data or fails typed`, async () => {
      const folder = variant(DEMO, { 'model.safetensors': renamed(from, to) })
      expectPlainModelOrTyped(await settle(() => loadModel(folder)))
      expectPlainModelOrTyped(await settle(() => loadModel(join(folder, 'model.safetensors'))))
    })
  }
})

describe('config.json naming a built-in as the architecture (fuzz: "HF_DESCRIBE[...] is not a function")', () => {
  const config = JSON.parse(readFileSync(join(DEMO, 'config.json'), 'utf8'))
  for (const change of [
    { architectures: ['hasOwnProperty'] },
    { architectures: ['constructor'] },
    { architectures: ['__proto__'] },
    { model_type: 'toString', architectures: [] },
  ]) {
    it(JSON.stringify(change), async () => {
      const folder = variant(DEMO, { 'config.json': JSON.stringify({ ...config, ...change }) })
      const r = await settle(() => loadModel(folder))
      expect(r.untyped, String(r.untyped)).toBeUndefined()
      expect(r.typed, 'a config naming no real architecture must not open').toBeInstanceOf(WhittleError)
      expect(r.typed!.message).toContain(folder)
    })
  }
})

describe('tokenizer.json with a malformed post_processor (fuzz: TypeError from the tokenizer library)', () => {
  const tokenizer = JSON.parse(readFileSync(join(DEMO, 'tokenizer.json'), 'utf8'))
  const post = tokenizer.post_processor
  const variants: [string, unknown][] = [
    ['single[0] := 33', { ...post, single: [33, ...post.single.slice(1)] }],
    ['single := null', { ...post, single: null }],
    ['single := "propertyIsEnumerable"', { ...post, single: 'propertyIsEnumerable' }],
    ['single[1].Sequence := null', { ...post, single: [post.single[0], { Sequence: null }] }],
    ['single wrapped in an object', { ...post, single: { value: post.single } }],
  ]
  for (const [what, value] of variants) {
    it(what, async () => {
      const folder = variant(DEMO, { 'tokenizer.json': JSON.stringify({ ...tokenizer, post_processor: value }) })
      const opened = await settle(() => loadModel(folder))
      expect(opened.untyped, String(opened.untyped)).toBeUndefined()
      if (!opened.value) return
      const r = await settle(() => tokenizeForEval(opened.value!.files, 'Once upon a time'))
      expect(r.untyped, String(r.untyped)).toBeUndefined()
      if (r.typed) expect(r.typed.message).toContain('tokenizer.json')
      else expect(r.value).toBeInstanceOf(Int32Array)
    })
  }
})

describe.skipIf(!hasShared)(
  `GGUF whose architecture is a built-in name (${hasShared ? 'reference data present' : SKIP_SHARED})`,
  () => {
    it.each(['constructor', '__proto__', 'toString'])('general.architecture = %s', async (arch) => {
      const src = new Uint8Array(readFileSync(shared('models/stories260K-gguf/stories260K.gguf')))
      // Same-length rewrite of the value "llama" keeps every offset: pad the name's length field instead.
      const key = new TextEncoder().encode('general.architecture')
      let at = -1
      for (let i = 0; i < src.length - key.length && at < 0; i++)
        if (key.every((b, j) => src[i + j] === b)) at = i + key.length
      const valueLenAt = at + 4
      const oldLen = Number(new DataView(src.buffer).getBigUint64(valueLenAt, true))
      const name = new TextEncoder().encode(arch)
      const out = new Uint8Array(src.length - oldLen + name.length)
      out.set(src.subarray(0, valueLenAt))
      new DataView(out.buffer).setBigUint64(valueLenAt, BigInt(name.length), true)
      out.set(name, valueLenAt + 8)
      out.set(src.subarray(valueLenAt + 8 + oldLen), valueLenAt + 8 + name.length)
      // The data section moved by the length change; the reader must still fail typed, not crash.
      const file = join(dir, `arch-${arch.replace(/\W/g, '')}.gguf`)
      writeFileSync(file, out)
      expectPlainModelOrTyped(await settle(() => loadModel(file)))
    })
  },
)

describe('GPTQ packed parts of the wrong dtype (fuzz: RangeError building an Int32Array)', () => {
  let gptq = ''
  let ct = ''
  beforeAll(async () => {
    const view = withReplacements(await loadModel(DEMO))
    const records = new Map<string, UniformGridRecord>()
    for (const t of view.tensors.filter(isBlockLinear)) {
      const W = await readTensorF32(view.entry(t.name))
      records.set(
        t.name,
        rtnQuantize(W, t.shape[0], t.shape[1], { bits: 4, groupSize: 32, sym: false, scaleDtype: 'f16' }),
      )
      view.replace(t.name, W)
    }
    gptq = await exportGptq(view, records, join(dir, 'gptq'), { format: 'gptq' })
    ct = await exportCompressedTensors(view, records, join(dir, 'compressed-tensors'))
    closeAllFiles()
  })

  /** The checkpoint with one part retyped (shape kept, data range shrunk to fit) and the weight read. */
  async function retyped(part: string, dtype: string, size: number, shape?: number[]): Promise<void> {
    const { header, data } = readSt(join(gptq, 'model.safetensors'))
    const name = `model.layers.0.self_attn.q_proj.${part}`
    const e = header[name]
    const newShape = shape ?? e.shape
    const numel = newShape.reduce((a, b) => a * b, 1)
    header[name] = { ...e, dtype, shape: newShape, data_offsets: [e.data_offsets[0], e.data_offsets[0] + numel * size] }
    const folder = variant(gptq, { 'model.safetensors': writeSt(Object.entries(header), data) })
    const r = await settle(async () => {
      const m = await loadModel(folder)
      return readTensorF32(m.entry('model.layers.0.self_attn.q_proj.weight'))
    })
    expect(r.untyped, String(r.untyped)).toBeUndefined()
    expect(r.typed, `${part} as ${dtype} must be refused`).toBeInstanceOf(WhittleError)
  }

  it.each([
    ['g_idx', 'U8', 1],
    ['g_idx', 'F16', 2],
    ['g_idx', 'I16', 2],
    ['qzeros', 'U16', 2],
    ['qweight', 'U8', 1],
    ['scales', 'U8', 1],
  ] as const)('%s as %s', (part, dtype, size) => retyped(part, dtype, size))

  // 63 inputs still need the 8 rows of words qweight has, so the shapes agree; 63 bytes are no whole Int32Array.
  it('g_idx as U8 of an odd length', () => retyped('g_idx', 'U8', 1, [63]))

  // Fuzz: "RangeError: Maximum call stack size exceeded" from String() / JSON.stringify of the value while
  // building the error message. JSON.parse accepts this nesting; the message must not recurse into it.
  it.each([
    ['gptq', 'bits'],
    ['compressed-tensors', 'format'],
  ])('%s quantization_config.%s nested 100,000 arrays deep', async (which, key) => {
    const folder = which === 'gptq' ? gptq : ct
    const text = readFileSync(join(folder, 'config.json'), 'utf8')
    const marker = '"__deep__"'
    const config = JSON.parse(text)
    config.quantization_config[key] = '__deep__'
    const r = await settle(() =>
      loadModel(variant(folder, { 'config.json': JSON.stringify(config).replace(marker, DEEP) })),
    )
    expect(r.untyped, String(r.untyped)).toBeUndefined()
    expect(r.typed).toBeInstanceOf(WhittleError)
  })
})

/** An array nested 100,000 deep: JSON.parse takes it, recursive String() and JSON.stringify overflow on it. */
const DEEP = `${'['.repeat(100_000)}0${']'.repeat(100_000)}`

describe('values nested 100,000 arrays deep (fuzz: RangeError building the error message)', () => {
  const config = JSON.parse(readFileSync(join(DEMO, 'config.json'), 'utf8'))
  it.each(['intermediate_size', 'tie_word_embeddings', 'hidden_size'])('config.json %s', async (key) => {
    const folder = variant(DEMO, {
      'config.json': JSON.stringify({ ...config, [key]: '__deep__' }).replace('"__deep__"', DEEP),
    })
    const r = await settle(() => loadModel(folder))
    expect(r.untyped, String(r.untyped)).toBeUndefined()
    expect(r.typed).toBeInstanceOf(WhittleError)
  })

  it.each(['shape', 'data_offsets'])("a safetensors header entry's %s", async (field) => {
    const { header, data } = readSt(join(DEMO, 'model.safetensors'))
    const entries = Object.entries(header).map(([k, v]): [string, unknown] => [
      k,
      k === 'model.norm.weight' ? { ...v, [field]: '__deep__' } : v,
    ])
    const folder = variant(DEMO, { 'model.safetensors': writeSt(entries, data, (j) => j.replace('"__deep__"', DEEP)) })
    const r = await settle(() => loadModel(folder))
    expect(r.untyped, String(r.untyped)).toBeUndefined()
    expect(r.typed).toBeInstanceOf(WhittleError)
  })
})
