// `whittle eval --kv`: the quantized cache changes the perplexity, the report carries the setting with
// its memory and llama.cpp's flags, and a malformed setting is a usage error.

import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { hasShared, shared, SKIP_SHARED } from '../engine/testing/shared-data'

const root = path.resolve(__dirname, '../..')
const tmp = mkdtempSync(path.join(os.tmpdir(), 'whittle-cli-kv-'))
afterAll(() => rmSync(tmp, { recursive: true, force: true }))

function whittle(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [path.join(root, 'src-main/cli/bin.mjs'), ...args], {
    encoding: 'utf8',
    timeout: 240_000,
  })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr }
}

describe.skipIf(!hasShared)(`whittle eval --kv (${hasShared ? 'reference data present' : SKIP_SHARED})`, () => {
  it('evaluates with a quantized KV cache and reports the setting', () => {
    const text = path.join(tmp, 'slice.txt')
    writeFileSync(text, readFileSync(shared('text/tinystories_eval.txt'), 'utf8').slice(0, 12_000))
    const model = shared('models/stories260K')
    const run = (...extra: string[]) => {
      const r = whittle('eval', model, '--text', text, '--seqlen', '128', '--json', ...extra)
      expect(r.status, r.stderr).toBe(0)
      return JSON.parse(r.stdout)
    }
    const plain = run()
    expect(plain.kv_cache).toBeNull()
    const token2 = run('--kv', 'token:2', '--context', '4096')
    expect(token2.windows).toBe(plain.windows)
    expect(token2.ppl).toBeGreaterThan(plain.ppl)
    // 5 layers × 4 kv heads × (K, V) × (2·8 bits + 32 bits of scale and minimum) = 240 bytes per token.
    expect(token2.kv_cache).toMatchObject({
      scheme: 'token:2',
      bytes_per_token: 240,
      baseline_bytes_per_token: 640,
      context_length: 4096,
      saved_bytes: 400 * 4096,
      llama_cpp: null,
    })
    const q8 = run('--kv', 'q8_0')
    expect(q8.kv_cache.llama_cpp).toMatch(/--cache-type-k q8_0 --cache-type-v q8_0/)
    expect(q8.kv_cache.context_length).toBe(128)

    const human = whittle('eval', model, '--text', text, '--seqlen', '128', '--max-windows', '2', '--kv', 'kivi:2')
    expect(human.status, human.stderr).toBe(0)
    expect(human.stdout).toMatch(/kv cache kivi:2/)
  }, 600_000)

  it('rejects a malformed --kv', () => {
    const r = whittle(
      'eval',
      shared('models/stories260K'),
      '--text',
      shared('text/tinystories_eval.txt'),
      '--kv',
      'token:12',
    )
    expect(r.status).not.toBe(0)
    expect(r.stderr).toMatch(/--kv/)
    expect(r.stderr).toMatch(/bits must be an integer from 1 to 8/)
  })
})
