// The CLI as a user runs it: a child process, stdout parsed, exit codes checked. Statistics are checked
// against a naive f64 computation over the tensor read independently of the streaming path.

import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { openModelFiles } from '../engine/formats/open'
import { readTensorF32 } from '../engine/formats/read'
import { scaled } from '../engine/testing/time-factor'
import { COMPRESS } from './compress-command'
import { CONVERT } from './convert-command'
import { EVAL } from './eval-command'
import { INSPECT } from './inspect-command'
import { SERVE } from './serve-command'

const root = path.resolve(__dirname, '../..')
const demo = path.join(root, 'resources/demo/stories260K')
// CLI runs record their results for the Compare view: in a folder of the test's, never the user's.
const configDir = mkdtempSync(path.join(os.tmpdir(), 'whittle-cli-config-'))

function whittle(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [path.join(root, 'src-main/cli/bin.mjs'), ...args], {
    encoding: 'utf8',
    timeout: scaled(240_000),
    env: { ...process.env, WHITTLE_CONFIG_DIR: configDir },
  })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr }
}

describe('whittle inspect', () => {
  it('prints one JSON document whose statistics match a naive computation', async () => {
    const r = whittle('inspect', demo, '--json')
    expect(r.status, r.stderr).toBe(0)
    const doc = JSON.parse(r.stdout)
    expect(doc.model.architecture).toBe('llama')
    expect(doc.model.layers).toBe(5)
    expect(doc.model.kvHeads).toBe(4)
    const files = await openModelFiles(demo)
    expect(doc.tensors).toHaveLength(files.tensors.length)
    const params = files.tensors.reduce((a, t) => a + t.shape.reduce((x, y) => x * y, 1), 0)
    expect(doc.model.parameterCount).toBe(params)

    const name = 'model.layers.2.mlp.down_proj.weight'
    const row = doc.tensors.find((t: { name: string }) => t.name === name)
    expect(row).toMatchObject({ role: 'down', layer: 2, shape: [64, 172], dtype: 'F32' })
    const w = await readTensorF32(files.tensors.find((t) => t.name === name)!)
    let mean = 0,
      absmax = 0
    for (const x of w) {
      mean += x
      absmax = Math.max(absmax, Math.abs(x))
    }
    mean /= w.length
    let m2 = 0,
      m4 = 0
    for (const x of w) {
      const d = x - mean
      m2 += d * d
      m4 += d ** 4
    }
    expect(row.absmax).toBe(absmax)
    expect(row.std).toBeCloseTo(Math.sqrt(m2 / w.length), 12)
    expect(row.kurtosis).toBeCloseTo((w.length * m4) / (m2 * m2), 9)
    // Outlier channels: input columns whose absmax exceeds 6x the median column absmax.
    const cols = new Float64Array(172)
    for (let r = 0; r < 64; r++) for (let c = 0; c < 172; c++) cols[c] = Math.max(cols[c], Math.abs(w[r * 172 + c]))
    const sorted = Float64Array.from(cols).sort()
    const med = (sorted[85] + sorted[86]) / 2
    expect(row.outlierChannels).toBe(cols.filter((v) => v > 6 * med).length)
  })

  it('prints a summary and a table for people', () => {
    const r = whittle('inspect', demo)
    expect(r.status, r.stderr).toBe(0)
    expect(r.stdout).toMatch(/architecture\s+llama/)
    expect(r.stdout).toContain('model.layers.4.self_attn.q_proj.weight')
  })

  it('exits non-zero with one line naming the file on bad input', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'whittle-cli-'))
    const bad = path.join(dir, 'broken.safetensors')
    writeFileSync(bad, Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 1, 2, 3]))
    const r = whittle('inspect', bad)
    expect(r.status).toBe(1)
    expect(r.stderr.trim().split('\n')).toHaveLength(1)
    expect(r.stderr).toContain(bad)
  })

  it('rejects unknown options with usage and exit code 2', () => {
    const r = whittle('inspect', demo, '--jsno')
    expect(r.status).toBe(2)
    expect(r.stderr).toContain('unknown option --jsno')
  })
})

describe('whittle --help and usage errors', () => {
  it.each([INSPECT, EVAL, COMPRESS, CONVERT, SERVE])(
    '$name --help prints every declared option and exits 0',
    (spec) => {
      const r = whittle(spec.name, '--help')
      expect(r.status, r.stderr).toBe(0)
      expect(r.stdout).toContain(`usage: whittle ${spec.name}`)
      for (const o of spec.options) expect(r.stdout).toContain(`--${o.name}`)
    },
  )

  it('compress --help names the export options users reach for', () => {
    const r = whittle('compress', '--help')
    for (const flag of [
      '--format',
      '--gguf-type',
      '--gptq-format',
      '--dtype',
      '--shard-size',
      '--max-windows',
      '--threads',
    ])
      expect(r.stdout).toContain(flag)
  })

  it("a usage error exits 2 and points at the command's help", () => {
    const r = whittle('compress', demo, '--recipe')
    expect(r.status).toBe(2)
    expect(r.stderr).toContain('whittle compress --help')
  })
})

describe('whittle compress checks its destination before any work', () => {
  it('fails at once, naming the destination, when it cannot be created', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'whittle-cli-'))
    const blocker = path.join(dir, 'a-file')
    writeFileSync(blocker, 'not a folder')
    const out = path.join(blocker, 'result')
    const recipe = path.join(root, 'resources/recipes/gptq-4bit.yaml')
    const r = whittle(
      'compress',
      demo,
      '--recipe',
      recipe,
      '--out',
      out,
      '--eval',
      path.join(root, 'resources/text/tinystories_eval.txt'),
    )
    expect(r.status).toBe(1)
    expect(r.stderr).toContain(out)
    expect(r.stderr).toContain('is a file')
    // No perplexity or calibration progress was printed: the check came first.
    expect(r.stderr).not.toMatch(/calibration|perplexity before|tokenizing/)
  })

  it('names the text file when it is shorter than one window', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'whittle-cli-'))
    const text = path.join(dir, 'tiny.txt')
    writeFileSync(text, 'Once')
    const r = whittle('eval', demo, '--text', text)
    expect(r.status).toBe(1)
    expect(r.stderr).toMatch(/tiny\.txt: the text has \d+ tokens?, fewer than one window of 256/)
  })

  it('warns when --seqlen exceeds max_position_embeddings', () => {
    const r = whittle(
      'eval',
      demo,
      '--text',
      path.join(root, 'resources/text/tinystories_eval.txt'),
      '--seqlen',
      '1024',
      '--max-windows',
      '1',
    )
    expect(r.status, r.stderr).toBe(0)
    expect(r.stderr).toContain("exceeds the model's max_position_embeddings (512)")
  })
})

describe('whittle compress --sweep', () => {
  it('runs the recipe once per value and writes the points as JSON and CSV, and into the results log', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'whittle-cli-'))
    const recipe = path.join(dir, 'sweep.yaml')
    writeFileSync(
      recipe,
      'steps:\n  - method: rtn\n    params: {group_size: 32}\nsweep: {param: bits, values: [8, 3]}\n',
    )
    const out = path.join(dir, 'out')
    const r = whittle(
      'compress',
      demo,
      '--recipe',
      recipe,
      '--out',
      out,
      '--sweep',
      '--eval',
      path.join(root, 'resources/text/tinystories_eval.txt'),
      '--max-windows',
      '2',
      '--json',
    )
    expect(r.status, r.stderr).toBe(0)
    const doc = JSON.parse(readFileSync(path.join(out, 'sweep.json'), 'utf8'))
    expect(doc.points.map((p: { value: number }) => p.value)).toEqual([8, 3])
    // 3 bits costs more perplexity and fewer bits than 8.
    expect(doc.points[1].ppl_after).toBeGreaterThan(doc.points[0].ppl_after)
    expect(doc.points[1].bits_per_weight).toBeLessThan(doc.points[0].bits_per_weight)
    const csv = readFileSync(path.join(out, 'sweep.csv'), 'utf8').trim().split('\n')
    expect(csv[0]).toBe(
      'value,bits_per_weight,bytes_after,bytes_dense_after,sparsity,ppl_before,ppl_after,seconds,params_before,params_after',
    )
    expect(csv.slice(1).map((l) => Number(l.split(',')[6]))).toEqual(
      doc.points.map((p: { ppl_after: number }) => p.ppl_after),
    )
    const log = JSON.parse(readFileSync(path.join(configDir, 'results.json'), 'utf8')) as {
      bitsPerWeight: number
      recipe: { steps: { params: { bits: number } }[] }
    }[]
    expect(log.slice(-2).map((p) => p.recipe.steps[0].params.bits)).toEqual([8, 3])
  })

  it('refuses --sweep without a sweep section, and a sweep section without --sweep, as usage errors', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'whittle-cli-'))
    const plain = path.join(dir, 'plain.yaml')
    writeFileSync(plain, 'steps:\n  - method: rtn\n    params: {bits: 8}\n')
    expect(whittle('compress', demo, '--recipe', plain, '--out', path.join(dir, 'a'), '--sweep').status).toBe(2)
    const swept = path.join(dir, 'swept.yaml')
    writeFileSync(swept, 'steps:\n  - method: rtn\nsweep: {param: bits, values: [4, 99]}\n')
    const r = whittle('compress', demo, '--recipe', swept, '--out', path.join(dir, 'b'), '--sweep')
    // A value the method refuses fails before any run, naming the value.
    expect(r.status).toBe(1)
    expect(r.stderr).toContain('sweep value 99')
  })
})
