// `whittle compress` with a recipe kv_cache, in-process on the bundled demo model: --json carries the
// setting, and `whittle eval --kv` of the export with the same setting and windows gives ppl_after again,
// with the same kv_cache report field for field.

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it, vi } from 'vitest'
import { compressCommand } from './compress-command'
import { evalCommand } from './eval-command'

const root = path.resolve(__dirname, '../..')
const demo = path.join(root, 'resources/demo/stories260K')
const tmp = mkdtempSync(path.join(os.tmpdir(), 'whittle-cli-compress-kv-'))
afterAll(() => rmSync(tmp, { recursive: true, force: true }))
// The start of the bundled eval text: tokenizing all of it three times would take most of the test.
const evalText = path.join(tmp, 'eval.txt')
writeFileSync(evalText, readFileSync(path.join(root, 'resources/text/tinystories_eval.txt'), 'utf8').slice(0, 12_000))

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

describe('whittle compress with a recipe kv_cache', () => {
  it('measures ppl_after as eval --kv measures the exported model', async () => {
    const recipe = path.join(tmp, 'recipe.yaml')
    writeFileSync(recipe, 'steps:\n  - method: rtn\n    params: {bits: 4, group_size: 32}\nkv_cache: KIVI:2\n')
    const out = path.join(tmp, 'out')
    const window = ['--seqlen', '128', '--max-windows', '3']
    const compressed = await run(compressCommand, [
      demo,
      '--recipe',
      recipe,
      '--out',
      out,
      '--eval',
      evalText,
      ...window,
      '--threads',
      '2',
      '--json',
    ])
    expect(compressed.code).toBe(0)
    const report = JSON.parse(compressed.stdout)
    expect(report.recipe.kv_cache).toBe('kivi:2')
    expect(report.kv_cache).toMatchObject({ scheme: 'kivi:2', context_length: 128, llama_cpp: null })
    // The file written beside the weights says the same, and the re-runnable recipe keeps the setting.
    expect(JSON.parse(readFileSync(path.join(out, 'whittle-report.json'), 'utf8')).kv_cache).toEqual(report.kv_cache)
    expect(readFileSync(path.join(out, 'whittle-recipe.yaml'), 'utf8')).toMatch(/^kv_cache: kivi:2$/m)

    const evaluated = await run(evalCommand, [out, '--text', evalText, ...window, '--kv', 'kivi:2', '--json'])
    expect(evaluated.code).toBe(0)
    const e = JSON.parse(evaluated.stdout)
    expect(Math.abs(e.ppl / report.ppl_after - 1)).toBeLessThan(1e-9)
    expect(e.kv_cache).toEqual(report.kv_cache)
    // Without the cache the export's perplexity is another number: the setting was applied.
    const plain = await run(evalCommand, [out, '--text', evalText, ...window, '--json'])
    expect(Math.abs(JSON.parse(plain.stdout).ppl / report.ppl_after - 1)).toBeGreaterThan(1e-3)
  }, 300_000)

  it("names the setting and llama.cpp's flags in the human-readable summary", async () => {
    const recipe = path.join(tmp, 'recipe-q4.yaml')
    writeFileSync(recipe, 'steps:\n  - method: rtn\n    params: {bits: 8}\nkv_cache: q4_0\n')
    const r = await run(compressCommand, [
      demo,
      '--recipe',
      recipe,
      '--out',
      path.join(tmp, 'out-q4'),
      '--threads',
      '2',
    ])
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/^kv cache +q4_0: .*llama\.cpp: --cache-type-k q4_0 --cache-type-v q4_0 -fa on/m)
  }, 300_000)
})
