// `whittle imatrix` and `--imatrix` on convert, in-process through the CLI's dispatcher: the files written
// re-read and compared with llama-imatrix's and llama-quantize's, the usage errors and exit codes.

import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { readGguf } from '../engine/formats/gguf'
import { readImatrixFile } from '../engine/formats/imatrix-file'
import { readTensorBytes } from '../engine/formats/read'
import { hasShared, shared, SKIP_SHARED } from '../engine/testing/shared-data'
import { main } from './main'

let tmp: string
beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'whittle-imatrix-cli-'))
})
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true })
})

async function whittle(...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
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
    return { code: await main(argv), stdout, stderr }
  } finally {
    out.mockRestore()
    err.mockRestore()
  }
}

const golden = (name: string): string => shared('reference', 'gguf-golden', 'imatrix', name)
const calib = (): string => shared('text', 'tinystories_calib.txt')

describe('usage', () => {
  it('help lists the options; a missing --text, a bad --format and a misplaced --imatrix are usage errors (2)', async () => {
    const help = await whittle('imatrix', '--help')
    expect(help.code).toBe(0)
    for (const o of ['--text FILE', '--out FILE', '--ctx N', '--chunks N', '--format FORMAT', '--json'])
      expect(help.stdout).toContain(o)
    expect((await whittle('help')).stdout).toMatch(/imatrix MODEL/)
    expect((await whittle('imatrix', 'm.gguf', '--out', 'x.gguf')).code).toBe(2)
    const bad = await whittle('imatrix', 'm.gguf', '--text', 't', '--out', 'x', '--format', 'npz')
    expect(bad.code).toBe(2)
    expect(bad.stderr).toMatch(/--format must be one of gguf, dat/)
    const misplaced = await whittle(
      'convert',
      'm',
      '--out',
      path.join(tmp, 'st'),
      '--format',
      'safetensors',
      '--imatrix',
      'i.gguf',
    )
    expect(misplaced.code).toBe(2)
    expect(misplaced.stderr).toMatch(/--imatrix FILE applies to --format gguf only/)
  })
})

if (!hasShared) console.log(`[cli/imatrix-command.test] small-llama: ${SKIP_SHARED}`)

describe.skipIf(!hasShared)('whittle imatrix and convert --imatrix on small-llama', () => {
  it("imatrix -c 128 --chunks 100 writes llama-imatrix's entries, in GGUF and in .dat", async () => {
    const want = (await readImatrixFile(golden('imatrix.gguf'))).imatrix
    const out = path.join(tmp, 'im.gguf')
    const r = await whittle(
      'imatrix',
      golden('small-llama-tok-f32.gguf'),
      '--text',
      calib(),
      '--out',
      out,
      '--ctx',
      '128',
      '--chunks',
      '100',
      '--json',
    )
    expect(r.code, r.stderr).toBe(0)
    const doc = JSON.parse(r.stdout)
    expect(doc).toMatchObject({ chunks: 100, usedTokens: 12800, format: 'gguf', tokenizer: 'gguf' })
    expect(doc.entries).toHaveLength(14)
    const got = await readImatrixFile(out)
    expect(got.format).toBe('gguf')
    expect([...got.imatrix.entries.keys()]).toEqual([...want.entries.keys()])
    for (const [name, e] of want.entries) {
      const g = got.imatrix.entries.get(name)!
      expect([...g.counts]).toEqual([...e.counts])
      for (let j = 0; j < e.sums.length; j++)
        expect(Math.abs(g.sums[j] - e.sums[j]) / e.sums[j], `${name}[${j}]`).toBeLessThan(1e-3)
    }
    // The same run as a legacy .dat: one call count of ceil(12800 / 128) per entry.
    const dat = path.join(tmp, 'im.dat')
    const d = await whittle(
      'imatrix',
      golden('small-llama-tok-f32.gguf'),
      '--text',
      calib(),
      '--out',
      dat,
      '--ctx',
      '128',
      '--chunks',
      '100',
      '--format',
      'dat',
    )
    expect(d.code, d.stderr).toBe(0)
    expect(d.stdout).toMatch(/14 entries from 12800 of the text's \d+ tokens/)
    const back = await readImatrixFile(dat)
    expect(back.format).toBe('dat')
    expect([...back.imatrix.entries.values()].every((e) => e.counts[0] === 100)).toBe(true)
    // Never replaces an existing file: the work fails (1) and says so.
    const again = await whittle(
      'imatrix',
      golden('small-llama-tok-f32.gguf'),
      '--text',
      calib(),
      '--out',
      dat,
      '--ctx',
      '128',
      '--chunks',
      '2',
    )
    expect(again.code).toBe(1)
    expect(again.stderr).toMatch(/exists/)
  })

  it("convert --imatrix: llama-quantize's bytes and its quantize.imatrix.* keys; a bad imatrix fails with its name", async () => {
    const out = path.join(tmp, 'q.gguf')
    const r = await whittle(
      'convert',
      golden('small-llama-tok-f32.gguf'),
      '--out',
      out,
      '--format',
      'gguf',
      '--gguf-type',
      'Q3_K',
      '--imatrix',
      golden('imatrix.dat'),
      '--json',
    )
    expect(r.code, r.stderr).toBe(0)
    const report = JSON.parse(r.stdout)
    expect(report.tensors.filter((t: { imatrix?: boolean }) => t.imatrix)).toHaveLength(14)
    const [got, want] = await Promise.all([readGguf(out), readGguf(golden('small-llama-imatrix-Q3_K.gguf'))])
    for (const t of want.tensors) {
      const g = got.tensors.find((x) => x.name === t.name)!
      expect(
        Buffer.compare(
          Buffer.from(await readTensorBytes(g, 0, g.byteLength)),
          Buffer.from(await readTensorBytes(t, 0, t.byteLength)),
        ),
        t.name,
      ).toBe(0)
    }
    expect(got.metadata['quantize.imatrix.entries_count']).toBe(14)
    expect(got.metadata['quantize.imatrix.chunks_count']).toBe(100)
    expect(got.metadata['quantize.imatrix.dataset']).toBe('tinystories_calib.txt')

    const bad = await whittle(
      'convert',
      golden('small-llama-tok-f32.gguf'),
      '--out',
      path.join(tmp, 'bad.gguf'),
      '--format',
      'gguf',
      '--gguf-type',
      'Q4_K',
      '--imatrix',
      golden('small-llama-imatrix-Q4_K.gguf'),
    )
    expect(bad.code).toBe(1)
    expect(bad.stderr).toContain('small-llama-imatrix-Q4_K.gguf')
    expect(bad.stderr).toMatch(/not an importance matrix|no .in_sum2/)
  })

  it('compress --format gguf --imatrix: the export quantizes the block Linears with it and records it', async () => {
    const recipe = path.join(tmp, 'q8.yaml')
    await writeFile(recipe, 'steps:\n  - method: gguf\n    params: {type: Q8_0}\n')
    const out = path.join(tmp, 'compressed')
    const r = await whittle(
      'compress',
      golden('small-llama-tok-f32.gguf'),
      '--recipe',
      recipe,
      '--out',
      out,
      '--format',
      'gguf',
      '--gguf-type',
      'Q4_K',
      '--imatrix',
      golden('imatrix.gguf'),
      '--json',
    )
    expect(r.code, r.stderr).toBe(0)
    const file = (await readdir(out)).find((f) => f.endsWith('.gguf'))!
    const meta = (await readGguf(path.join(out, file))).metadata
    expect(meta['quantize.imatrix.file']).toBe(golden('imatrix.gguf'))
    expect(meta['quantize.imatrix.entries_count']).toBe(14)
    const misplaced = await whittle(
      'compress',
      golden('small-llama-tok-f32.gguf'),
      '--recipe',
      recipe,
      '--out',
      path.join(tmp, 'never'),
      '--imatrix',
      golden('imatrix.gguf'),
    )
    expect(misplaced.code).toBe(2)
  })
})
