// llama-quantize's type-level flags on `whittle convert` and `whittle compress`, in-process on
// small-llama (2 layers; ../shared/reference/gguf-golden): each written file is re-read and its tensor
// types, bytes and metadata compared with what the flag asks for, or with another export's tensors.

import { existsSync } from 'node:fs'
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { WhittleError } from '../engine/errors'
import { readGguf, type GgufFile } from '../engine/formats/gguf'
import { ggmlTypeById } from '../engine/formats/ggml-types'
import { readTensorBytes } from '../engine/formats/read'
import { SKIP_SHARED, shared } from '../engine/testing/shared-data'
import { UsageError } from './args'
import { HelpRequested, commandUsage } from './command-spec'
import { COMPRESS, compressCommand } from './compress-command'
import { CONVERT, convertCommand } from './convert-command'
import { GGUF_FLAG_OPTIONS, parseGgufFlags } from './gguf-flags'

const golden = shared('reference', 'gguf-golden')
const hfModel = path.join(golden, 'small-llama-hf-bf16')
const f32 = path.join(golden, 'small-llama-f32.gguf')
const hasGolden = existsSync(hfModel) && existsSync(f32)
if (!hasGolden) console.warn(`skipping the GGUF flag CLI tests: ${golden}: ${SKIP_SHARED}`)

let tmp: string
const configDir = process.env.WHITTLE_CONFIG_DIR
beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'whittle-gguf-flags-'))
  // compress records each run for the Compare view: here, in the test's own folder.
  process.env.WHITTLE_CONFIG_DIR = tmp
})
afterAll(async () => {
  if (configDir === undefined) delete process.env.WHITTLE_CONFIG_DIR
  else process.env.WHITTLE_CONFIG_DIR = configDir
  await rm(tmp, { recursive: true, force: true })
})

async function run(
  command: (argv: string[]) => Promise<number>,
  argv: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = ''
  let stderr = ''
  const out = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stdout += String(chunk)
    return true
  })
  const err = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stderr += String(chunk)
    return true
  })
  try {
    return { code: await command(argv), stdout, stderr }
  } finally {
    out.mockRestore()
    err.mockRestore()
  }
}

function types(g: GgufFile): Record<string, string> {
  return Object.fromEntries(g.infos.map((i) => [i.name, ggmlTypeById(i.ggmlType)?.name ?? String(i.ggmlType)]))
}

async function tensorBytes(g: GgufFile, name: string): Promise<Buffer> {
  const i = g.infos.findIndex((t) => t.name === name)
  return Buffer.from(await readTensorBytes(g.tensors[i], 0, g.tensors[i].byteLength))
}

describe('the flags are declared once', () => {
  it('convert and compress --help list every flag', () => {
    for (const spec of [CONVERT, COMPRESS]) {
      const usage = commandUsage(spec)
      for (const o of GGUF_FLAG_OPTIONS) expect(usage).toContain(`--${o.name}`)
    }
    expect(() => parseGgufFlags({ help: true }, true)).not.toThrow()
    return expect(convertCommand(['--help'])).rejects.toBeInstanceOf(HelpRequested)
  })

  it('bad values are usage errors naming the flag', () => {
    const bad: [Record<string, string | boolean>, boolean, string][] = [
      [{ pure: true }, false, '--pure'],
      [{ 'output-tensor-type': 'Q9' }, true, '--output-tensor-type'],
      [{ 'tensor-type': 'attn_v' }, true, '--tensor-type'],
      [{ 'tensor-type': 'attn_v(=q8_0' }, true, 'regular expression'],
      [{ 'prune-layers': '1,x' }, true, '--prune-layers'],
      [{ 'leave-output-tensor': true, 'output-tensor-type': 'q8_0' }, true, 'contradict'],
    ]
    for (const [flags, gguf, mention] of bad) {
      expect(() => parseGgufFlags(flags, gguf)).toThrow(UsageError)
      expect(() => parseGgufFlags(flags, gguf)).toThrow(mention)
    }
    expect(
      parseGgufFlags({ 'tensor-type': 'attn_v=q8_0,ffn_(up|gate)=IQ4_NL', 'prune-layers': '3,1,3' }, true),
    ).toEqual({
      flags: {
        tensorTypes: [
          { pattern: 'attn_v', type: 'Q8_0' },
          { pattern: 'ffn_(up|gate)', type: 'IQ4_NL' },
        ],
      },
      dryRun: false,
      pruneLayers: [1, 3],
    })
  })
})

describe.skipIf(!hasGolden)('whittle convert --format gguf with type flags', () => {
  it('--dry-run prints the plan (types, rules, sizes) and writes nothing', async () => {
    const out = path.join(tmp, 'dry.gguf')
    const { code, stdout } = await run(convertCommand, [
      f32,
      '--out',
      out,
      '--format',
      'gguf',
      '--gguf-type',
      'Q2_K_MIX',
      '--dry-run',
      '--json',
    ])
    expect(code).toBe(0)
    expect(existsSync(out)).toBe(false)
    const plan = JSON.parse(stdout) as {
      tensors: { name: string; type: string; rule: string; bytes: number }[]
      bytes: number
    }
    const by = Object.fromEntries(plan.tensors.map((t) => [t.name, t]))
    // small-llama: 4 query heads over 2 K/V heads (GQA 2 < 4), so the Q2_K mix gives attn_v Q3_K.
    expect([by['blk.0.attn_v.weight'].type, by['blk.0.attn_v.weight'].rule]).toEqual(['Q3_K', 'attn_v-q2_k'])
    expect([by['blk.1.ffn_down.weight'].type, by['output.weight'].type, by['blk.1.ffn_up.weight'].type]).toEqual([
      'Q3_K',
      'Q6_K',
      'Q2_K',
    ])
    expect(plan.bytes).toBe(plan.tensors.reduce((n, t) => n + t.bytes, 0))
    // The human table names the rules.
    const human = await run(convertCommand, [
      f32,
      '--out',
      out,
      '--format',
      'gguf',
      '--gguf-type',
      'Q4_K_M',
      '--dry-run',
    ])
    expect(human.stdout).toContain('attn_v-more-bits')
    expect(existsSync(out)).toBe(false)
  })

  it('--output-tensor-type, --token-embedding-type and --tensor-type set those tensors; the rest follow the mix; the dry run predicted the file', async () => {
    const out = path.join(tmp, 'flags.gguf')
    const argv = [
      hfModel,
      '--out',
      out,
      '--format',
      'gguf',
      '--gguf-type',
      'Q4_K_M',
      '--output-tensor-type',
      'q8_0',
      '--token-embedding-type',
      'Q4_0',
      '--tensor-type',
      'ffn_up=q5_0,blk\\.1\\.attn_q=IQ4_NL',
    ]
    const dry = JSON.parse((await run(convertCommand, [...argv, '--dry-run', '--json'])).stdout) as {
      tensors: { name: string; type: string; bytes: number }[]
    }
    const { code, stdout } = await run(convertCommand, [...argv, '--json'])
    expect(code).toBe(0)
    const report = JSON.parse(stdout) as { tensors: { name: string; type: string; rule: string; pattern?: string }[] }
    const g = await readGguf(out)
    const t = types(g)
    expect([
      t['output.weight'],
      t['token_embd.weight'],
      t['blk.0.ffn_up.weight'],
      t['blk.1.ffn_up.weight'],
      t['blk.1.attn_q.weight'],
      t['blk.0.attn_q.weight'],
    ]).toEqual(['Q8_0', 'Q4_0', 'Q5_0', 'Q5_0', 'IQ4_NL', 'Q4_K'])
    // The mix's own rules still fire where no flag applies (2 layers: use_more_bits picks layer 1).
    expect([t['blk.0.attn_v.weight'], t['blk.1.attn_v.weight'], t['blk.1.ffn_down.weight']]).toEqual([
      'Q4_K',
      'Q6_K',
      'Q6_K',
    ])
    const rule = Object.fromEntries(report.tensors.map((x) => [x.name, x.rule]))
    expect([
      rule['output.weight'],
      rule['token_embd.weight'],
      rule['blk.0.ffn_up.weight'],
      rule['blk.1.attn_v.weight'],
    ]).toEqual(['output-tensor-type', 'token-embedding-type', 'tensor-type', 'attn_v-more-bits'])
    // The dry run's types and sizes are the written file's.
    for (const p of dry.tensors) {
      expect(t[p.name]).toBe(p.type)
      const info = g.tensors[g.infos.findIndex((x) => x.name === p.name)]
      expect(info.byteLength).toBe(p.bytes)
    }
  })

  it("--pure with a mix writes the pure base type under the mix's file type; --leave-output-tensor keeps output.weight as the source has it", async () => {
    const out = path.join(tmp, 'pure.gguf')
    expect(
      (
        await run(convertCommand, [
          f32,
          '--out',
          out,
          '--format',
          'gguf',
          '--gguf-type',
          'Q4_K_M',
          '--pure',
          '--leave-output-tensor',
        ])
      ).code,
    ).toBe(0)
    const g = await readGguf(out)
    const t = types(g)
    expect(t['output.weight']).toBe('F32')
    expect(
      new Set(
        Object.entries(t)
          .filter(([n]) => n !== 'output.weight' && !n.includes('norm'))
          .map(([, v]) => v),
      ),
    ).toEqual(new Set(['Q4_K']))
    expect(g.metadata['general.file_type']).toBe(15)
    // The kept output.weight is the source's bytes.
    expect(
      (await tensorBytes(g, 'output.weight')).equals(await tensorBytes(await readGguf(f32), 'output.weight')),
    ).toBe(true)
  })

  it('--prune-layers 0 drops layer 0: the file has one block, which holds the old layer 1', async () => {
    const full = path.join(tmp, 'full-q8.gguf')
    const pruned = path.join(tmp, 'pruned-q8.gguf')
    expect((await run(convertCommand, [f32, '--out', full, '--format', 'gguf', '--gguf-type', 'Q8_0'])).code).toBe(0)
    expect(
      (
        await run(convertCommand, [
          f32,
          '--out',
          pruned,
          '--format',
          'gguf',
          '--gguf-type',
          'Q8_0',
          '--prune-layers',
          '0',
        ])
      ).code,
    ).toBe(0)
    const a = await readGguf(full)
    const b = await readGguf(pruned)
    expect(b.metadata['llama.block_count']).toBe(1)
    expect(b.infos.some((i) => i.name.startsWith('blk.1.'))).toBe(false)
    for (const part of [
      'attn_q',
      'attn_k',
      'attn_v',
      'attn_output',
      'ffn_gate',
      'ffn_up',
      'ffn_down',
      'attn_norm',
      'ffn_norm',
    ]) {
      expect(
        (await tensorBytes(b, `blk.0.${part}.weight`)).equals(await tensorBytes(a, `blk.1.${part}.weight`)),
        part,
      ).toBe(true)
    }
    await expect(
      run(convertCommand, [f32, '--out', path.join(tmp, 'x.gguf'), '--format', 'gguf', '--prune-layers', '0,1']),
    ).rejects.toThrow(/leaves no model/)
  })

  it('re-quantizing an already quantized GGUF is refused with a typed error unless --allow-requantize, then warned about', async () => {
    const q4 = path.join(golden, 'small-llama-Q4_K.gguf')
    const refused = await run(convertCommand, [
      q4,
      '--out',
      path.join(tmp, 'rq.gguf'),
      '--format',
      'gguf',
      '--gguf-type',
      'Q8_0',
    ]).catch((e: unknown) => e)
    expect(refused).toBeInstanceOf(WhittleError)
    expect((refused as WhittleError).code).toBe('requantize')
    expect((refused as WhittleError).message).toContain('--allow-requantize')
    expect(existsSync(path.join(tmp, 'rq.gguf'))).toBe(false)
    // Same type: the blocks are copied, nothing is re-quantized, nothing refused.
    const same = path.join(tmp, 'same.gguf')
    expect((await run(convertCommand, [q4, '--out', same, '--format', 'gguf', '--gguf-type', 'Q4_K'])).code).toBe(0)
    expect(
      (await tensorBytes(await readGguf(same), 'blk.0.attn_q.weight')).equals(
        await tensorBytes(await readGguf(q4), 'blk.0.attn_q.weight'),
      ),
    ).toBe(true)
    // Allowed: written, each re-quantized tensor says where it came from, and stderr warns.
    const allowed = await run(convertCommand, [
      q4,
      '--out',
      path.join(tmp, 'rq.gguf'),
      '--format',
      'gguf',
      '--gguf-type',
      'Q8_0',
      '--allow-requantize',
      '--json',
    ])
    expect(allowed.code).toBe(0)
    const report = JSON.parse(allowed.stdout) as {
      tensors: { name: string; requantizedFrom?: string }[]
      warnings: string[]
    }
    expect(report.tensors.find((t) => t.name === 'blk.0.attn_q.weight')?.requantizedFrom).toBe('Q4_K')
    expect(report.warnings.length).toBe(1)
    expect(allowed.stderr).toContain('re-quantized')
    expect(types(await readGguf(path.join(tmp, 'rq.gguf')))['blk.0.attn_q.weight']).toBe('Q8_0')
  })
})

describe.skipIf(!hasGolden)('whittle compress --format gguf with type flags', () => {
  it('--dry-run prints the prediction and the GGUF plan without compressing; --prune-layers becomes a first drop_layers step', async () => {
    const recipe = path.join(tmp, 'rtn.yaml')
    await writeFile(recipe, 'steps:\n  - method: rtn\n    params: {bits: 4, group_size: 32}\n')
    const out = path.join(tmp, 'compress-dry')
    const { code, stdout } = await run(compressCommand, [
      f32,
      '--recipe',
      recipe,
      '--out',
      out,
      '--format',
      'gguf',
      '--gguf-type',
      'Q3_K_L',
      '--dry-run',
      '--json',
    ])
    expect(code).toBe(0)
    expect(existsSync(out)).toBe(false)
    const r = JSON.parse(stdout) as {
      prediction: { bytesAfter: number; bytesBefore: number }
      gguf: { type: string; tensors: { name: string; type: string; rule: string }[] }
    }
    expect(r.prediction.bytesAfter).toBeLessThan(r.prediction.bytesBefore)
    expect(r.gguf.tensors.find((t) => t.name === 'blk.0.ffn_down.weight')).toMatchObject({
      type: 'Q5_K',
      rule: 'ffn_down-q3_k_l',
    })
    await expect(run(compressCommand, [f32, '--recipe', recipe, '--out', out, '--pure'])).rejects.toThrow(
      /--pure applies to --format gguf only/,
    )
    expect(await readdir(tmp)).not.toContain('compress-dry')
  })

  it('--prune-layers runs a drop_layers step first: the exported GGUF has one block and the recipe records the step', async () => {
    const recipe = path.join(tmp, 'rtn8.yaml')
    await writeFile(
      recipe,
      'calibration: {samples: 2, seqlen: 32, seed: 0}\nsteps:\n  - method: rtn\n    params: {bits: 8, group_size: 32}\n',
    )
    const out = path.join(tmp, 'compress-pruned')
    // The copy with a tokenizer: the drop_layers step draws calibration windows.
    const withTokenizer = path.join(golden, 'imatrix', 'small-llama-tok-f32.gguf')
    const { code } = await run(compressCommand, [
      withTokenizer,
      '--recipe',
      recipe,
      '--out',
      out,
      '--format',
      'gguf',
      '--gguf-type',
      'Q8_0',
      '--prune-layers',
      '1',
      '--json',
    ])
    expect(code).toBe(0)
    const files = await readdir(out)
    const g = await readGguf(
      path.join(
        out,
        files.find((f) => f.endsWith('.gguf'))!,
      ),
    )
    expect(g.metadata['llama.block_count']).toBe(1)
    expect(g.infos.some((i) => i.name.startsWith('blk.1.'))).toBe(false)
    const saved = await readFile(path.join(out, 'whittle-recipe.yaml'), 'utf8')
    expect(saved.indexOf('drop_layers')).toBeGreaterThanOrEqual(0)
    expect(saved.indexOf('drop_layers')).toBeLessThan(saved.indexOf('rtn'))
  })
})
