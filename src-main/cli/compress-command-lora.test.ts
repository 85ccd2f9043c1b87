// `whittle compress` with a lora step, on the bundled demo model: the training progress line on stderr
// (step, loss, tokens/s, ETA), the training record in --json (first and last loss, tokens seen), and
// --adapter-out writing the adapters alone as PEFT and as a llama.cpp GGUF adapter while merge: false
// leaves the exported weights exactly the base's.

import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { openModelFiles } from '../engine/formats/open'
import { readTensorF32 } from '../engine/formats/read'
import { scaled } from '../engine/testing/time-factor'

const root = path.resolve(__dirname, '../..')
const demo = path.join(root, 'resources/demo/stories260K')
const configDir = mkdtempSync(path.join(os.tmpdir(), 'whittle-cli-config-'))

function whittle(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [path.join(root, 'src-main/cli/bin.mjs'), ...args], {
    encoding: 'utf8',
    timeout: scaled(240_000),
    env: { ...process.env, WHITTLE_CONFIG_DIR: configDir },
  })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr }
}

function recipe(dir: string, params: string): string {
  const file = path.join(dir, 'recipe.yaml')
  writeFileSync(
    file,
    `calibration: {samples: 16, seqlen: 128, seed: 0}\nsteps:\n  - method: lora\n    params: {${params}}\n`,
  )
  return file
}

describe('whittle compress with a lora step', () => {
  it(
    'prints training progress on stderr and the training record in --json',
    () => {
      const dir = mkdtempSync(path.join(os.tmpdir(), 'whittle-cli-lora-'))
      const r = whittle(
        'compress',
        demo,
        '--recipe',
        recipe(dir, 'r: 4, alpha: 8, steps: 60, batch_size: 2, seqlen: 128, lr: 0.001'),
        '--out',
        path.join(dir, 'out'),
        '--json',
      )
      expect(r.status, r.stderr).toBe(0)
      expect(r.stderr).toMatch(/step 1\/1 lora: step \d+\/60 · loss [0-9.]+ · \d+ tok\/s · ETA \d+ s/)
      const doc = JSON.parse(r.stdout)
      expect(doc.training).toHaveLength(1)
      expect(doc.training[0]).toMatchObject({ step: 0, method: 'lora', steps: 60, tokens: 60 * 2 * 128 })
      expect(doc.training[0].first_loss).toBeGreaterThan(0)
      expect(doc.training[0].last_loss).toBeGreaterThan(0)
      expect(doc.training[0].losses).toHaveLength(60)
      expect(doc.training[0].losses[59]).toBe(doc.training[0].last_loss)
      expect(doc.tensors).toHaveLength(35)
      expect(doc.tensors[0].format).toBe('lora r4 merged')
    },
    scaled(300_000),
  )

  it(
    "--adapter-out writes the adapters alone (PEFT, GGUF); with merge: false the exported weights are the base's",
    async () => {
      const dir = mkdtempSync(path.join(os.tmpdir(), 'whittle-cli-lora-'))
      const file = recipe(dir, 'r: 4, alpha: 8, steps: 2, batch_size: 2, seqlen: 128, lr: 0.01, merge: false')
      const peft = whittle(
        'compress',
        demo,
        '--recipe',
        file,
        '--out',
        path.join(dir, 'a'),
        '--adapter-out',
        path.join(dir, 'peft'),
        '--json',
      )
      expect(peft.status, peft.stderr).toBe(0)
      expect(JSON.parse(peft.stdout).adapter).toEqual({ path: path.join(dir, 'peft'), format: 'peft', tensors: 70 })
      expect(JSON.parse(readFileSync(path.join(dir, 'peft', 'adapter_config.json'), 'utf8'))).toMatchObject({
        peft_type: 'LORA',
        r: 4,
        lora_alpha: 8,
      })
      const exported = await openModelFiles(path.join(dir, 'a'))
      const base = await openModelFiles(demo)
      for (const t of base.tensors)
        expect(await readTensorF32(exported.tensors.find((e) => e.name === t.name)!)).toEqual(await readTensorF32(t))
      const gguf = whittle(
        'compress',
        demo,
        '--recipe',
        file,
        '--out',
        path.join(dir, 'b'),
        '--adapter-out',
        path.join(dir, 'adapter.gguf'),
      )
      expect(gguf.status, gguf.stderr).toBe(0)
      const adapter = await openModelFiles(path.join(dir, 'adapter.gguf'))
      expect(adapter.metadata['adapter.type']).toBe('lora')
      expect(adapter.tensors.map((t) => t.name)).toContain('blk.0.attn_q.weight.lora_b')
      // A recipe without adapters is refused before any work.
      const none = path.join(dir, 'none.yaml')
      writeFileSync(none, 'steps:\n  - method: rtn\n    params: {bits: 8}\n')
      const refused = whittle(
        'compress',
        demo,
        '--recipe',
        none,
        '--out',
        path.join(dir, 'c'),
        '--adapter-out',
        path.join(dir, 'x'),
      )
      expect(refused.status).toBe(2)
      expect(refused.stderr).toContain('--adapter-out needs a recipe step that trains LoRA adapters')
    },
    scaled(300_000),
  )
})
