import { mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { describeArchitecture } from '../arch'
import { WhittleError } from '../errors'
import { openModelFiles } from '../formats/open'
import { readTensorF32 } from '../formats/read'
import { STAMP_FILE, generateLlamaModel } from './generate'
import { main } from './cli'
import { PRESETS } from './presets'
import { DEFAULT_OUTLIERS, WEIGHT_STD, outlierChannels } from './weights'

const preset = PRESETS['tiny-llama-test']
let work: string

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'whittle-synthetic-'))
})
afterAll(async () => {
  await rm(work, { recursive: true, force: true })
})

async function filesOf(dir: string): Promise<Record<string, Buffer>> {
  const out: Record<string, Buffer> = {}
  for (const name of (await readdir(dir)).sort())
    if (name !== STAMP_FILE) out[name] = await readFile(path.join(dir, name))
  return out
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b)
  return (s[(s.length - 1) >> 1] + s[s.length >> 1]) / 2
}

describe('generateLlamaModel', () => {
  it("writes a model that opens as the preset's Llama, every tensor with a role", async () => {
    const dir = path.join(work, 'f32')
    const result = await generateLlamaModel(dir, 'tiny-llama-test', { dtype: 'F32', seed: 7 })
    expect(result.skipped).toBe(false)
    const model = await openModelFiles(dir)
    expect(model.format).toBe('safetensors')
    expect(model.config?.architectures).toEqual(['LlamaForCausalLM'])
    const arch = describeArchitecture(model)
    expect(arch).toMatchObject({
      family: 'llama',
      declared: 'LlamaForCausalLM',
      layers: preset.layers,
      hiddenSize: preset.hiddenSize,
      heads: preset.heads,
      kvHeads: preset.kvHeads,
      headDim: preset.hiddenSize / preset.heads,
      intermediateSize: preset.intermediateSize,
      vocabSize: preset.vocabSize,
      tiedEmbeddings: false,
      warnings: [],
    })
    expect(model.tensors).toHaveLength(1 + preset.layers * 9 + 2)
    for (const t of model.tensors) {
      expect(t.dtype).toBe('F32')
      expect(arch.places[t.name].role, t.name).not.toBe('other')
    }
    const norm = await readTensorF32(model.tensors.find((t) => t.name === 'model.norm.weight')!)
    expect(Math.abs(norm.reduce((a, b) => a + b, 0) / norm.length - 1)).toBeLessThan(0.02)
  })

  it('puts the outlier input channels where outlierChannels says, and only there', async () => {
    const model = await openModelFiles(path.join(work, 'f32'))
    for (let layer = 0; layer < preset.layers; layer++) {
      const hot = outlierChannels(preset.hiddenSize, 7, layer, DEFAULT_OUTLIERS.channelsPerLayer)
      expect(hot).toHaveLength(DEFAULT_OUTLIERS.channelsPerLayer)
      for (const part of ['self_attn.q_proj', 'self_attn.k_proj', 'mlp.up_proj', 'self_attn.o_proj']) {
        const entry = model.tensors.find((t) => t.name === `model.layers.${layer}.${part}.weight`)!
        const w = await readTensorF32(entry)
        const [rows, cols] = entry.shape
        const colAbsmax = Array.from({ length: cols }, (_, c) => {
          let m = 0
          for (let r = 0; r < rows; r++) m = Math.max(m, Math.abs(w[r * cols + c]))
          return m
        })
        const med = median(colAbsmax)
        const flagged = colAbsmax.flatMap((m, c) => (m > 6 * med ? [c] : []))
        // o_proj reads the attention output, not the hidden stream: no outliers planted there.
        expect(flagged, `${entry.name}`).toEqual(part === 'self_attn.o_proj' ? [] : hot)
        const plainStd = Math.sqrt(
          w.filter((_, i) => !hot.includes(i % cols)).reduce((a, v) => a + v * v, 0) / (rows * (cols - hot.length)),
        )
        expect(plainStd).toBeGreaterThan(WEIGHT_STD * 0.85)
        expect(plainStd).toBeLessThan(WEIGHT_STD * 1.15)
      }
    }
  })

  it('is deterministic for a seed, and the seed matters', async () => {
    await generateLlamaModel(path.join(work, 'bf16-a'), 'tiny-llama-test', { dtype: 'BF16', seed: 11 })
    await generateLlamaModel(path.join(work, 'bf16-b'), 'tiny-llama-test', { dtype: 'BF16', seed: 11 })
    await generateLlamaModel(path.join(work, 'bf16-c'), 'tiny-llama-test', { dtype: 'BF16', seed: 12 })
    const [a, b, c] = await Promise.all(['bf16-a', 'bf16-b', 'bf16-c'].map((d) => filesOf(path.join(work, d))))
    expect(Object.keys(a)).toEqual(['config.json', 'generation_config.json', 'model.safetensors'])
    expect(b['model.safetensors'].equals(a['model.safetensors'])).toBe(true)
    expect(c['model.safetensors'].equals(a['model.safetensors'])).toBe(false)
    expect(JSON.parse(a['config.json'].toString()).torch_dtype).toBe('bfloat16')
  })

  it('stores BF16 as the rounding of the same F32 values', async () => {
    await generateLlamaModel(path.join(work, 'f32-11'), 'tiny-llama-test', { dtype: 'F32', seed: 11 })
    const wide = await openModelFiles(path.join(work, 'f32-11'))
    const narrow = await openModelFiles(path.join(work, 'bf16-a'))
    const name = 'model.layers.1.mlp.down_proj.weight'
    const w32 = await readTensorF32(wide.tensors.find((t) => t.name === name)!)
    const w16 = await readTensorF32(narrow.tensors.find((t) => t.name === name)!)
    expect(narrow.tensors.find((t) => t.name === name)!.dtype).toBe('BF16')
    // Each BF16 value must be the nearer of the two BF16 numbers around its F32 value (the F32 pattern with
    // its low 16 bits cleared, and that plus one BF16 step away from zero).
    const bits = new Uint32Array(w32.buffer)
    const view = new DataView(new ArrayBuffer(4))
    const asFloat = (b: number): number => {
      view.setUint32(0, b >>> 0)
      return view.getFloat32(0)
    }
    let wrong = 0
    for (let i = 0; i < w32.length; i++) {
      const toward0 = asFloat(bits[i] & 0xffff0000)
      const away = asFloat((bits[i] & 0xffff0000) + 0x10000)
      const nearest = Math.abs(toward0 - w32[i]) <= Math.abs(away - w32[i]) ? [toward0] : [away]
      if (Math.abs(toward0 - w32[i]) === Math.abs(away - w32[i])) nearest.push(away)
      if (!nearest.includes(w16[i])) wrong++
    }
    expect(wrong).toBe(0)
  })

  it('writes shards with an index that opens to the same tensors', async () => {
    const dir = path.join(work, 'sharded')
    const result = await generateLlamaModel(dir, 'tiny-llama-test', { dtype: 'F16', seed: 11, shardBytes: 100_000 })
    expect(result.files).toContain('model.safetensors.index.json')
    const shards = result.files.filter((f) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(f))
    expect(shards.length).toBeGreaterThan(1)
    const index = JSON.parse(await readFile(path.join(dir, 'model.safetensors.index.json'), 'utf8'))
    expect(new Set(Object.values(index.weight_map))).toEqual(new Set(shards))
    const model = await openModelFiles(dir)
    expect(model.files).toHaveLength(shards.length)
    expect(index.metadata.total_size).toBe(model.tensors.reduce((a, t) => a + t.byteLength, 0))
    const single = await openModelFiles(path.join(work, 'bf16-a'))
    expect(model.tensors.map((t) => [t.name, t.shape])).toEqual(single.tensors.map((t) => [t.name, t.shape]))
    expect(describeArchitecture(model).layers).toBe(preset.layers)
  })

  it('skips a folder that already holds the same complete model, and regenerates otherwise', async () => {
    const dir = path.join(work, 'bf16-a')
    const before = (await stat(path.join(dir, 'model.safetensors'))).mtimeMs
    expect((await generateLlamaModel(dir, 'tiny-llama-test', { dtype: 'BF16', seed: 11 })).skipped).toBe(true)
    expect((await stat(path.join(dir, 'model.safetensors'))).mtimeMs).toBe(before)
    // Another seed: regenerated in place.
    expect((await generateLlamaModel(dir, 'tiny-llama-test', { dtype: 'BF16', seed: 13 })).skipped).toBe(false)
    // A damaged file: regenerated.
    await writeFile(path.join(dir, 'model.safetensors'), 'truncated')
    expect((await generateLlamaModel(dir, 'tiny-llama-test', { dtype: 'BF16', seed: 13 })).skipped).toBe(false)
    // An interrupted run (stamp not complete): regenerated.
    const stamp = JSON.parse(await readFile(path.join(dir, STAMP_FILE), 'utf8'))
    await writeFile(path.join(dir, STAMP_FILE), JSON.stringify({ ...stamp, complete: false }))
    expect((await generateLlamaModel(dir, 'tiny-llama-test', { dtype: 'BF16', seed: 13 })).skipped).toBe(false)
    // Going from sharded to one file leaves no stale shards behind.
    const sharded = path.join(work, 'sharded')
    await generateLlamaModel(sharded, 'tiny-llama-test', { dtype: 'F16', seed: 11 })
    expect(Object.keys(await filesOf(sharded))).toEqual(['config.json', 'generation_config.json', 'model.safetensors'])
  })

  it('refuses a folder it did not make, and bad options', async () => {
    const foreign = path.join(work, 'foreign')
    await generateLlamaModel(path.join(foreign, 'unused'), 'tiny-llama-test', { dtype: 'F32', seed: 1 })
    await writeFile(path.join(foreign, 'config.json'), '{}')
    await expect(generateLlamaModel(foreign, 'tiny-llama-test', { dtype: 'F32', seed: 1 })).rejects.toThrow(/not empty/)
    expect(await readFile(path.join(foreign, 'config.json'), 'utf8')).toBe('{}')
    const fresh = path.join(work, 'fresh')
    await expect(generateLlamaModel(fresh, 'nope' as never, { dtype: 'F32', seed: 1 })).rejects.toThrow(
      /unknown preset/,
    )
    await expect(generateLlamaModel(fresh, 'tiny-llama-test', { dtype: 'Q4_0' as never, seed: 1 })).rejects.toThrow(
      WhittleError,
    )
    await expect(generateLlamaModel(fresh, 'tiny-llama-test', { dtype: 'F32', seed: 1.5 })).rejects.toThrow(/seed/)
    await expect(
      generateLlamaModel(fresh, 'tiny-llama-test', { dtype: 'F32', seed: 1, shardBytes: -1 }),
    ).rejects.toThrow(/shard/)
    await expect(
      generateLlamaModel(fresh, 'tiny-llama-test', { dtype: 'F32', seed: 1, outliers: { scale: 0 } }),
    ).rejects.toThrow(/outlier scale/)
  })

  it('runs from the command line, and skips the second time', async () => {
    const dir = path.join(work, 'cli')
    const logs: string[] = []
    const log = console.log
    console.log = (...args: unknown[]) => {
      logs.push(args.join(' '))
    }
    try {
      expect(await main(['--preset', 'tiny-llama-test', '--dtype', 'bf16', '--out', dir, '--seed', '11'])).toBe(0)
      expect(await main(['--preset', 'tiny-llama-test', '--dtype', 'BF16', '--out', dir, '--seed', '11'])).toBe(0)
    } finally {
      console.log = log
    }
    expect(logs[0]).toMatch(/^wrote tiny-llama-test BF16/)
    expect(logs[1]).toMatch(/already holds/)
    expect(
      (await filesOf(dir))['model.safetensors'].equals((await filesOf(path.join(work, 'bf16-b')))['model.safetensors']),
    ).toBe(true)
    const error = console.error
    console.error = () => {}
    try {
      expect(await main(['--preset', 'gpt-5', '--out', dir])).toBe(2)
    } finally {
      console.error = error
    }
  })
})
