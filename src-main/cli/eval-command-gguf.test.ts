// `whittle eval` on a folder holding nothing but a GGUF: it tokenizes with the GGUF's own tokenizer,
// says so, and agrees with the same model evaluated from its HF folder.

import { spawnSync } from 'node:child_process'
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { hasShared, shared, SKIP_SHARED } from '../engine/testing/shared-data'

const root = path.resolve(__dirname, '../..')
const tmp = mkdtempSync(path.join(os.tmpdir(), 'whittle-cli-gguf-'))
afterAll(() => rmSync(tmp, { recursive: true, force: true }))

function whittle(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [path.join(root, 'src-main/cli/bin.mjs'), ...args], {
    encoding: 'utf8',
    timeout: 240_000,
  })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr }
}

describe.skipIf(!hasShared)(
  `whittle eval on a lone GGUF (${hasShared ? 'reference data present' : SKIP_SHARED})`,
  () => {
    it('uses tokenizer.ggml.* and matches the HF folder', () => {
      const folder = path.join(tmp, 'gguf-only')
      mkdirSync(folder)
      copyFileSync(shared('models/stories260K-gguf/stories260K.gguf'), path.join(folder, 'stories260K.gguf'))
      // A slice of the eval text keeps the run short; it still spans several windows.
      const text = path.join(tmp, 'slice.txt')
      writeFileSync(text, readFileSync(shared('text/tinystories_eval.txt'), 'utf8').slice(0, 12_000))

      const gguf = whittle('eval', folder, '--text', text, '--seqlen', '128', '--json')
      expect(gguf.status, gguf.stderr).toBe(0)
      const mine = JSON.parse(gguf.stdout)
      expect(mine.tokenizer).toBe('gguf')
      const hf = whittle('eval', shared('models/stories260K'), '--text', text, '--seqlen', '128', '--json')
      expect(hf.status, hf.stderr).toBe(0)
      const theirs = JSON.parse(hf.stdout)
      expect(theirs.tokenizer).toBe('tokenizer.json')
      expect(mine.tokens).toBe(theirs.tokens)
      expect(mine.windows).toBe(theirs.windows)
      expect(mine.windows).toBeGreaterThan(5)
      expect(Math.abs(mine.ppl / theirs.ppl - 1)).toBeLessThan(5e-4)

      const human = whittle(
        'eval',
        path.join(folder, 'stories260K.gguf'),
        '--text',
        text,
        '--seqlen',
        '128',
        '--max-windows',
        '2',
        '--kernels',
        'fused',
      )
      expect(human.status, human.stderr).toBe(0)
      expect(human.stdout).toMatch(/tokenizer gguf/)

      // llama-perplexity's protocol: the GGUF's BOS (tokenizer.ggml.bos_token_id) and the HF folder's
      // (config.json) start every window alike, so both still agree; the number is not the gptq one.
      const llama = (model: string): { ppl: number; protocol: string; predictions: number; windows: number } => {
        const r = whittle('eval', model, '--text', text, '--seqlen', '128', '--protocol', 'llama.cpp', '--json')
        expect(r.status, r.stderr).toBe(0)
        return JSON.parse(r.stdout)
      }
      const fromGguf = llama(folder)
      const fromHf = llama(shared('models/stories260K'))
      expect(fromGguf.protocol).toBe('llama.cpp')
      expect(fromGguf.predictions).toBe(fromGguf.windows * 63)
      expect(Math.abs(fromGguf.ppl / fromHf.ppl - 1)).toBeLessThan(5e-4)
      expect(Math.abs(fromGguf.ppl / mine.ppl - 1)).toBeGreaterThan(1e-3)

      const bad = whittle('eval', folder, '--text', text, '--protocol', 'lm-eval')
      expect(bad.status).toBe(2)
      expect(bad.stderr).toMatch(/--protocol/)
      const badKernels = whittle('eval', folder, '--text', text, '--kernels', 'gpu')
      expect(badKernels.status).toBe(2)
      expect(badKernels.stderr).toMatch(/--kernels/)
      // The default is the exact build, so eval repeats compress's measurements bit for bit.
      expect(mine.kernels).toBe('exact')
    })
  },
)
