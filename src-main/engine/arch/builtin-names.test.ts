// Names from files that are also JavaScript built-ins (constructor, toString, __proto__, hasOwnProperty...)
// must be plain data everywhere: an architecture so named is refused with a typed error naming the file and
// the name; a tensor so named opens with a string role, and the architecture survives JSON and structured
// cloning (Electron IPC) with every tensor in it.

import { mkdirSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { writeGguf } from '../formats/gguf-writer'
import { openModelFiles } from '../formats/open'
import { writeSafetensors } from '../formats/safetensors-writer'
import { expectWhittleError, tempFolder } from '../formats/testing/temp-files-and-errors'
import { modelFromFiles } from '../model/loaded-model'
import { describeArchitecture, type ModelArchitecture } from './index'
import { fakeModel } from './testing/fake-model-files'

const { dir, cleanup } = tempFolder('whittle-builtin-names-')
afterAll(cleanup)

const BUILTINS = ['constructor', 'toString', '__proto__', 'hasOwnProperty', 'valueOf', '__defineGetter__']
const f32 = (n: number): Uint8Array => new Uint8Array(new Float32Array(n).buffer)
let counter = 0

/** A folder with a one-tensor model.safetensors and the given config.json text. */
async function hfFolder(
  configJson: string,
  tensors: [string, number[]][] = [['lm_head.weight', [2, 2]]],
): Promise<string> {
  const d = join(dir, `hf-${counter++}`)
  mkdirSync(d)
  writeFileSync(join(d, 'config.json'), configJson)
  await writeSafetensors(
    join(d, 'model.safetensors'),
    tensors.map(([name, shape]) => ({ name, dtype: 'F32', shape, data: f32(shape.reduce((a, b) => a * b, 1)) })),
  )
  return d
}

/** Every tensor has an own place whose role is a string, and the places survive JSON and structuredClone. */
function expectPlainPlaces(arch: ModelArchitecture, names: string[]): void {
  const viaJson = JSON.parse(JSON.stringify(arch.places)) as Record<string, { role: unknown }>
  const viaClone = structuredClone(arch.places) as Record<string, { role: unknown }>
  for (const name of names) {
    expect(Object.hasOwn(arch.places, name), name).toBe(true)
    expect(typeof arch.places[name].role, name).toBe('string')
    expect(Object.hasOwn(viaJson, name) && typeof viaJson[name].role === 'string', name).toBe(true)
    expect(Object.hasOwn(viaClone, name) && typeof viaClone[name].role === 'string', name).toBe(true)
  }
  expect(Object.keys(arch.places).sort()).toEqual([...names].sort())
}

describe('architecture names that are JavaScript built-ins', () => {
  for (const name of BUILTINS) {
    it(`config.json architectures ["${name}"] is refused, naming config.json and the name`, async () => {
      const d = await hfFolder(JSON.stringify({ architectures: [name] }))
      const files = await openModelFiles(d)
      await expectWhittleError(async () => describeArchitecture(files), 'unsupported', join(d, 'config.json'), name)
    })

    it(`config.json model_type "${name}" is refused`, async () => {
      const d = await hfFolder(JSON.stringify({ model_type: name }))
      const files = await openModelFiles(d)
      await expectWhittleError(async () => describeArchitecture(files), 'unsupported', join(d, 'config.json'), name)
    })

    it(`GGUF general.architecture "${name}" is refused, naming the GGUF file`, async () => {
      const file = join(dir, `arch-${counter++}.gguf`)
      await writeGguf(file, {
        kv: [
          { key: 'general.architecture', type: 'string', value: name },
          { key: `${name}.block_count`, type: 'u32', value: 1 },
        ],
        tensors: [{ name: 'output.weight', type: 'F32', dims: [2, 2], data: f32(4) }],
      })
      const files = await openModelFiles(file)
      await expectWhittleError(async () => describeArchitecture(files), 'unsupported', file, name)
    })
  }

  it('an unknown but ordinary architecture name still opens as unknown (control)', async () => {
    const d = await hfFolder(JSON.stringify({ architectures: ['FancyNewForCausalLM'] }))
    const arch = describeArchitecture(await openModelFiles(d))
    expect(arch.family).toBe('unknown')
    expect(arch.declared).toBe('FancyNewForCausalLM')
  })

  it('a "__proto__" key in config.json pollutes nothing and is not read as a setting', async () => {
    const d = await hfFolder(
      '{"__proto__": {"polluted": 1, "architectures": ["LlamaForCausalLM"]}, "constructor": {"prototype": {"polluted": 2}}, "model_type": "gpt2"}',
      [['h.0.attn.c_attn.weight', [2, 6]]],
    )
    const files = await openModelFiles(d)
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
    expect(Object.getPrototypeOf(files.config)).toBe(Object.prototype)
    // model_type decides: the architectures inside "__proto__" are data, not the config's own list.
    expect(describeArchitecture(files).family).toBe('gpt2')
  })
})

describe('tensor names that are JavaScript built-ins', () => {
  const families: {
    what: string
    config: Record<string, unknown> | null
    format?: 'gguf'
    metadata?: Record<string, unknown>
    names: string[]
  }[] = [
    {
      what: 'llama',
      config: { architectures: ['LlamaForCausalLM'] },
      names: [
        'model.layers.0.hasOwnProperty.weight',
        'model.layers.0.constructor.weight',
        'constructor.weight',
        '__proto__',
        'toString',
        'model.layers.0.self_attn.q_proj.weight',
      ],
    },
    {
      what: 'gpt2',
      config: { model_type: 'gpt2' },
      names: ['h.0.constructor.weight', 'h.0.__proto__.bias', 'valueOf.weight', 'h.0.attn.c_attn.weight'],
    },
    {
      what: 'opt',
      config: { model_type: 'opt' },
      names: [
        'model.decoder.layers.0.toString.weight',
        'model.decoder.constructor.weight',
        'model.decoder.layers.0.fc1.weight',
      ],
    },
    {
      what: 'gpt-neox',
      config: { model_type: 'gpt_neox' },
      names: [
        'gpt_neox.layers.0.isPrototypeOf.weight',
        '__proto__.weight',
        'gpt_neox.layers.0.mlp.dense_h_to_4h.weight',
      ],
    },
    {
      what: 'gguf llama',
      config: null,
      format: 'gguf',
      metadata: { 'general.architecture': 'llama' },
      names: [
        'blk.0.constructor.weight',
        'blk.0.__proto__.bias',
        'constructor.weight',
        'toString.bias',
        'hasOwnProperty.weight',
        'blk.0.attn_q.weight',
      ],
    },
    {
      what: 'unknown',
      config: { architectures: ['SomethingElse'] },
      names: ['constructor', '__proto__', 'layers.0.toString.weight'],
    },
  ]
  for (const f of families) {
    it(`${f.what}: every tensor gets a string role and the places clone`, () => {
      const model = fakeModel({
        format: f.format,
        config: f.config,
        metadata: f.metadata,
        tensors: f.names.map((n) => [n, [4, 4]]),
      })
      const arch = describeArchitecture(model)
      expectPlainPlaces(arch, f.names)
      // The engine's own summary of the model crosses IPC: it must clone whole.
      const loaded = modelFromFiles(model)
      const cloned = structuredClone({ summary: loaded.summary, tensors: loaded.tensors })
      expect(cloned.tensors.map((t) => t.name)).toEqual(f.names)
      for (const t of cloned.tensors) expect(typeof t.role).toBe('string')
    })
  }

  it('a safetensors file with such tensor names opens from disk, every name listed once', async () => {
    const names = ['__proto__', 'constructor.weight', 'model.layers.0.hasOwnProperty.weight', 'toString']
    const d = await hfFolder(
      JSON.stringify({ architectures: ['LlamaForCausalLM'] }),
      names.map((n) => [n, [2]]),
    )
    const files = await openModelFiles(d)
    expect(files.tensors.map((t) => t.name).sort()).toEqual([...names].sort())
    expectPlainPlaces(describeArchitecture(files), names)
  })

  it('a sharded index whose weight_map has "__proto__" and "constructor" names opens them as tensors', async () => {
    const d = join(dir, `sharded-${counter++}`)
    mkdirSync(d)
    await writeSafetensors(join(d, 'a.safetensors'), [{ name: '__proto__', dtype: 'F32', shape: [1], data: f32(1) }])
    await writeSafetensors(join(d, 'b.safetensors'), [{ name: 'constructor', dtype: 'F32', shape: [1], data: f32(1) }])
    // Written by hand: JSON.stringify of an object literal would drop a "__proto__" key.
    writeFileSync(
      join(d, 'model.safetensors.index.json'),
      '{"metadata": {}, "weight_map": {"__proto__": "a.safetensors", "constructor": "b.safetensors"}}',
    )
    writeFileSync(join(d, 'config.json'), '{"architectures": ["LlamaForCausalLM"]}')
    const files = await openModelFiles(d)
    expect(files.tensors.map((t) => [t.name, t.file])).toEqual([
      ['__proto__', resolve(d, 'a.safetensors')],
      ['constructor', resolve(d, 'b.safetensors')],
    ])
  })
})
