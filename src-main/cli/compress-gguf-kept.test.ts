// `whittle compress --format gguf` after a recipe's gguf step writes the step's own bytes, so the file is
// what perplexity was measured on and, for a pure type, tensor for tensor the file `whittle convert`
// writes from the source model. In-process on the bundled demo model with IQ4_NL, whose quantization of
// already dequantized values does not give the same blocks back (export/gguf/kept-tensor.test.ts shows it).

import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import os from 'node:os'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { readGguf } from '../engine/formats/gguf'
import { readTensorBytes } from '../engine/formats/read'
import { compressCommand } from './compress-command'
import { convertCommand } from './convert-command'

const root = path.resolve(__dirname, '../..')
const demo = path.join(root, 'resources/demo/stories260K')
const tmp = mkdtempSync(path.join(os.tmpdir(), 'whittle-cli-gguf-kept-'))
const configDir = process.env.WHITTLE_CONFIG_DIR
beforeAll(() => {
  // compress records each run for the Compare view: here, in the test's own folder.
  process.env.WHITTLE_CONFIG_DIR = tmp
})
afterAll(() => {
  if (configDir === undefined) delete process.env.WHITTLE_CONFIG_DIR
  else process.env.WHITTLE_CONFIG_DIR = configDir
  rmSync(tmp, { recursive: true, force: true })
})

/** Runs a command in-process and returns its exit status and stdout (stderr's progress is dropped). */
async function run(command: (argv: string[]) => Promise<number>, argv: string[]) {
  let stdout = ''
  const out = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stdout += String(chunk)
    return true
  })
  const err = vi.spyOn(process.stderr, 'write').mockImplementation(() => true)
  try {
    return { code: await command(argv), stdout }
  } finally {
    out.mockRestore()
    err.mockRestore()
  }
}

/** Every tensor of a GGUF file: name -> [type id, bytes]. */
async function tensors(file: string): Promise<Map<string, [number, Buffer]>> {
  const g = await readGguf(file)
  const out = new Map<string, [number, Buffer]>()
  for (const [i, info] of g.infos.entries())
    out.set(info.name, [info.ggmlType, Buffer.from(await readTensorBytes(g.tensors[i], 0, g.tensors[i].byteLength))])
  return out
}

describe('whittle compress --format gguf after a gguf step', () => {
  it('writes the step’s bytes: every tensor equals whittle convert’s of the same type', async () => {
    const recipe = path.join(tmp, 'recipe.yaml')
    writeFileSync(recipe, 'steps:\n  - method: gguf\n    params: {type: IQ4_NL}\n')
    const dir = path.join(tmp, 'compressed')
    const compressed = await run(compressCommand, [
      demo,
      '--recipe',
      recipe,
      '--out',
      dir,
      '--format',
      'gguf',
      '--gguf-type',
      'IQ4_NL',
      '--threads',
      '2',
      '--json',
    ])
    expect(compressed.code).toBe(0)
    const json = JSON.parse(compressed.stdout) as { export: { verified: string } }
    // 5 layers × 7 Linears; the step's F16 fallbacks (172-wide ffn_down) are kept bytes too.
    expect(json.export.verified).toContain("(35 written as the gguf step's own bytes)")

    const converted = path.join(tmp, 'converted.gguf')
    const direct = await run(convertCommand, [demo, '--out', converted, '--format', 'gguf', '--gguf-type', 'IQ4_NL'])
    expect(direct.code).toBe(0)

    const file = readdirSync(dir).find((f) => f.endsWith('.gguf'))!
    const a = await tensors(path.join(dir, file))
    const b = await tensors(converted)
    expect([...a.keys()]).toEqual([...b.keys()])
    for (const [name, [type, bytes]] of a) {
      expect(type, name).toBe(b.get(name)![0])
      expect(bytes.equals(b.get(name)![1]), `${name}: bytes`).toBe(true)
    }
  }, 120_000)
})
