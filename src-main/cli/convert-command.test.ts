// `whittle convert` in-process: GGUF out with a mix (file types checked against the policy), then back to
// safetensors, with the --json summary parsed from stdout.

import { existsSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { convertCommand } from './convert-command'
import { readGguf } from '../engine/formats/gguf'
import { openModelFiles } from '../engine/formats/open'
import { policyType } from '../engine/export/gguf/type-policy'
import { placeGgufTensor } from '../engine/arch/gguf-llama'
import { sharedDir as shared } from '../engine/testing/shared-data'

const hfModel = path.join(shared, 'reference/gguf-golden/small-llama-hf-bf16')
const hasShared = existsSync(hfModel)
if (!hasShared) console.warn(`skipping convert command tests: ${shared} (shared test data) is absent`)

let tmp: string
beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'whittle-convert-'))
})
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true })
})

async function run(argv: string[]): Promise<{ code: number; stdout: string }> {
  let stdout = ''
  const out = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stdout += String(chunk)
    return true
  })
  const err = vi.spyOn(process.stderr, 'write').mockImplementation(() => true)
  try {
    return { code: await convertCommand(argv), stdout }
  } finally {
    out.mockRestore()
    err.mockRestore()
  }
}

describe.skipIf(!hasShared)('whittle convert', () => {
  it('HF -> GGUF Q4_K_M: every tensor has the type the mix policy gives it', async () => {
    const out = path.join(tmp, 'm.gguf')
    const { code, stdout } = await run([hfModel, '--out', out, '--format', 'gguf', '--gguf-type', 'Q4_K_M', '--json'])
    expect(code).toBe(0)
    const summary = JSON.parse(stdout) as { file: string; tensors: { name: string; type: string }[] }
    expect(summary.file).toBe(out)
    const g = await readGguf(out)
    expect(g.metadata['general.file_type']).toBe(15)
    const typeNames: Record<number, string> = { 0: 'F32', 12: 'Q4_K', 14: 'Q6_K' }
    for (const info of g.infos) {
      const place = placeGgufTensor(info.name, true)
      const want = policyType('Q4_K_M', { role: place.role, layer: place.layer, rank: info.dims.length }, 2)
      expect(typeNames[info.ggmlType], info.name).toBe(want)
    }
    // Spot checks of the policy's outcome on this 2-layer model.
    const typeOf = (n: string): string => typeNames[g.infos.find((i) => i.name === n)!.ggmlType]
    expect([
      typeOf('output.weight'),
      typeOf('blk.1.attn_v.weight'),
      typeOf('blk.0.attn_v.weight'),
      typeOf('blk.1.ffn_down.weight'),
    ]).toEqual(['Q6_K', 'Q6_K', 'Q4_K', 'Q6_K'])
  })

  it('GGUF -> safetensors dequantizes quantized tensors to F32', async () => {
    const src = path.join(shared, 'reference/gguf-golden/small-llama-Q8_0.gguf')
    const dir = path.join(tmp, 'back')
    const { code, stdout } = await run([src, '--out', dir, '--format', 'safetensors', '--json'])
    expect(code).toBe(0)
    const summary = JSON.parse(stdout) as { tensors: { name: string; dtype: string; dequantized: boolean }[] }
    expect(summary.tensors.find((t) => t.name === 'model.layers.0.self_attn.q_proj.weight')).toMatchObject({
      dtype: 'F32',
      dequantized: true,
    })
    const files = await openModelFiles(dir)
    expect(files.config?.num_key_value_heads).toBe(2)
    expect(files.tensors.find((t) => t.name === 'model.layers.0.self_attn.k_proj.weight')!.shape).toEqual([128, 256])
  })

  it('rejects a bad --gguf-type', async () => {
    await expect(
      run([hfModel, '--out', path.join(tmp, 'x.gguf'), '--format', 'gguf', '--gguf-type', 'IQ2_XXS']),
    ).rejects.toThrow(/gguf-type/)
  })
})
