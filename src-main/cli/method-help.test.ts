// `whittle compress --help-method`: a method's parameters as the catalogue declares them, run as a user
// runs it (a child process, exit status checked).

import { spawnSync } from 'node:child_process'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { describeDefault, describeRange } from '../contract/method-params'
import { methodCatalogue } from '../engine/compress/methods'
import { scaled } from '../engine/testing/time-factor'

const root = path.resolve(__dirname, '../..')

function whittle(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [path.join(root, 'src-main/cli/bin.mjs'), ...args], {
    encoding: 'utf8',
    timeout: scaled(120_000),
  })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr }
}

describe('whittle compress --help-method', () => {
  it('prints every parameter of the method with its type, default, range and help, and exits 0', () => {
    const gptq = methodCatalogue().find((m) => m.name === 'gptq')!
    const r = whittle('compress', '--help-method', 'gptq')
    expect(r.status, r.stderr).toBe(0)
    expect(r.stdout).toContain(gptq.summary)
    const lines = r.stdout.split('\n')
    for (const p of gptq.params) {
      const line = lines.find((l) => l.startsWith(`${p.name} `))
      expect(line, p.name).toBeDefined()
      for (const part of [p.type, describeDefault(p), describeRange(p), p.help]) expect(line, p.name).toContain(part)
    }
  })

  it("shows a nested mapping's fields as parent.field (distill's optimizer), and --help-method=NAME works too", () => {
    const r = whittle('compress', '--help-method=distill')
    expect(r.status, r.stderr).toBe(0)
    for (const f of ['optimizer.beta1', 'optimizer.weight_decay', 'micro_batch']) expect(r.stdout).toContain(f)
    expect(r.stdout).toMatch(/micro_batch\s+int\s+= batch_size/)
  })

  it('without a name lists every method (exit 0); with an unknown name says so and lists them (exit 2)', () => {
    const names = methodCatalogue().map((m) => m.name)
    const list = whittle('compress', '--help-method')
    expect(list.status, list.stderr).toBe(0)
    for (const n of names) expect(list.stdout).toMatch(new RegExp(`^${n}\\s`, 'm'))
    const bad = whittle('compress', '--help-method', 'spinquant')
    expect(bad.status).toBe(2)
    expect(bad.stderr).toContain('unknown method "spinquant"')
    for (const n of names) expect(bad.stderr).toContain(n)
  })

  it('is listed in compress --help', () => {
    const r = whittle('compress', '--help')
    expect(r.status, r.stderr).toBe(0)
    expect(r.stdout).toContain('--help-method NAME')
  })
})
