// The CLI as a user runs it: a child process, stdout parsed, exit codes checked. Statistics are checked
// against a naive f64 computation over the tensor read independently of the streaming path.

import { spawnSync } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { openModelFiles } from '../engine/formats/open'
import { readTensorF32 } from '../engine/formats/read'

const root = path.resolve(__dirname, '../..')
const demo = path.join(root, 'resources/demo/stories260K')

function whittle(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [path.join(root, 'src-main/cli/bin.mjs'), ...args], { encoding: 'utf8', timeout: 120_000 })
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
    let mean = 0, absmax = 0
    for (const x of w) { mean += x; absmax = Math.max(absmax, Math.abs(x)) }
    mean /= w.length
    let m2 = 0, m4 = 0
    for (const x of w) { const d = x - mean; m2 += d * d; m4 += d ** 4 }
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
