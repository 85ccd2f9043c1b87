// openModelFiles: detection by content, HF folders and their sidecar files, and the errors for paths
// that hold no model.

import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { detectKind, openModelFiles } from './open'
import { loadTokenizer } from './hf-folder'
import { writeSafetensors } from './safetensors-writer'
import { writeGguf } from './gguf-writer'
import { expectWhittleError, tempFolder } from './testing/temp-files-and-errors'

const { dir, cleanup } = tempFolder()
afterAll(cleanup)

const st = join(dir, 'w.safetensors')
const gg = join(dir, 'w.gguf')
const f32 = (...v: number[]): Uint8Array => new Uint8Array(Float32Array.from(v).buffer)

beforeAll(async () => {
  await writeSafetensors(st, [{ name: 'lm_head.weight', dtype: 'F32', shape: [1, 2], data: f32(1, 2) }])
  await writeGguf(gg, {
    kv: [{ key: 'general.architecture', type: 'string', value: 'llama' }],
    tensors: [{ name: 'output.weight', type: 'F32', dims: [2, 1], data: f32(1, 2) }],
  })
})

function folder(name: string, files: Record<string, string | { copy: string }>): string {
  const d = join(dir, name)
  mkdirSync(d, { recursive: true })
  for (const [file, content] of Object.entries(files)) {
    if (typeof content === 'string') writeFileSync(join(d, file), content)
    else copyFileSync(content.copy, join(d, file))
  }
  return d
}

describe('detectKind', () => {
  it('classifies by leading bytes', () => {
    const bytes = (s: string): Uint8Array => new TextEncoder().encode(s)
    expect(detectKind(bytes('GGUF\x03\x00\x00\x00'), 100)).toBe('gguf')
    expect(detectKind(bytes('  \n{"weight_map": {}}'), 30)).toBe('index')
    const header = new Uint8Array(12)
    new DataView(header.buffer).setBigUint64(0, 4n, true)
    header.set(bytes('{}  '), 8)
    expect(detectKind(header, 12)).toBe('safetensors')
    expect(detectKind(header, 11)).toBe('unknown') // claimed header longer than the file
    expect(detectKind(bytes('PK\x03\x04 zip archive'), 100)).toBe('unknown')
  })
})

describe('openModelFiles', () => {
  it('detects files by content whatever their names', async () => {
    const ggAsBin = join(dir, 'renamed.bin')
    const stAsDat = join(dir, 'renamed.dat')
    copyFileSync(gg, ggAsBin)
    copyFileSync(st, stAsDat)
    expect((await openModelFiles(ggAsBin)).format).toBe('gguf')
    const s = await openModelFiles(stAsDat)
    expect(s.format).toBe('safetensors')
    expect(s.tensors[0].name).toBe('lm_head.weight')
  })

  it('opens a folder with config, generation config and tokenizer', async () => {
    const d = folder('hf', {
      'config.json': JSON.stringify({ model_type: 'llama', hidden_size: 2 }),
      'generation_config.json': JSON.stringify({ bos_token_id: 1 }),
      'tokenizer.json': '{}',
      'model.safetensors': { copy: st },
    })
    const m = await openModelFiles(d)
    expect(m).toMatchObject({
      format: 'safetensors',
      path: d,
      files: [join(d, 'model.safetensors')],
      config: { model_type: 'llama', hidden_size: 2 },
      generationConfig: { bos_token_id: 1 },
      tokenizerPath: join(d, 'tokenizer.json'),
    })
    // Opening the weights file directly picks up the same sidecars.
    const direct = await openModelFiles(join(d, 'model.safetensors'))
    expect(direct.config).toEqual(m.config)
    expect(direct.tokenizerPath).toBe(m.tokenizerPath)
  })

  it('opens a folder holding a single GGUF, config or not', async () => {
    const d = folder('gguf-only', { 'model-q8.gguf': { copy: gg } })
    const m = await openModelFiles(d)
    expect(m.format).toBe('gguf')
    expect(m.files).toEqual([join(d, 'model-q8.gguf')])
    expect(m.config).toBeNull()
    expect(m.metadata['general.architecture']).toBe('llama')
  })

  it('names what is missing or wrong in a folder', async () => {
    const noConfig = folder('no-config', { 'model.safetensors': { copy: st } })
    await expectWhittleError(() => openModelFiles(noConfig), 'not-found', noConfig, 'config.json')
    const empty = folder('empty', { 'config.json': '{}' })
    await expectWhittleError(() => openModelFiles(empty), 'not-found', empty, 'no model weights')
    const twoGguf = folder('two-gguf', { 'a.gguf': { copy: gg }, 'b.gguf': { copy: gg } })
    await expectWhittleError(() => openModelFiles(twoGguf), 'format', twoGguf, '2 .gguf files')
    const badConfig = folder('bad-config', { 'config.json': '{"hidden_size": 64,', 'model.safetensors': { copy: st } })
    await expectWhittleError(
      () => openModelFiles(badConfig),
      'config',
      join(badConfig, 'config.json'),
      'not valid json',
    )
    const arrayConfig = folder('array-config', { 'config.json': '[1]', 'model.safetensors': { copy: st } })
    await expectWhittleError(
      () => openModelFiles(arrayConfig),
      'config',
      join(arrayConfig, 'config.json'),
      'not a json object',
    )
  })

  it('rejects paths that hold no model', async () => {
    await expectWhittleError(
      () => openModelFiles(join(dir, 'absent')),
      'not-found',
      join(dir, 'absent'),
      'no such file',
    )
    const text = join(dir, 'notes.txt')
    writeFileSync(text, 'hello')
    await expectWhittleError(() => openModelFiles(text), 'unsupported', text, 'not a safetensors, gguf')
    const empty = join(dir, 'empty.bin')
    writeFileSync(empty, '')
    await expectWhittleError(() => openModelFiles(empty), 'unsupported', empty)
  })

  it('refuses to build a tokenizer without tokenizer.json', async () => {
    const d = folder('no-tokenizer', { 'config.json': '{}' })
    await expectWhittleError(() => loadTokenizer(d), 'not-found', d, 'tokenizer.json')
  })
})
