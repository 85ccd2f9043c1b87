// The README's method table against the catalogue: every method listed once, no stale rows, and the
// `params` column names exactly the parameters each method's spec declares.

import { readFileSync } from 'node:fs'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { methodCatalogue } from './index'

const README = path.resolve(__dirname, '../../../../README.md')

/** Cells of a Markdown table row; `\|` inside a cell is text, not a separator. */
function cells(line: string): string[] {
  return line
    .replace(/^\|/, '')
    .replace(/\|$/, '')
    .split(/(?<!\\)\|/)
    .map((c) => c.trim())
}

/** The rows of the table under "## Methods" whose header starts with `| method |`, as method → param names. */
function readmeMethodTable(text: string): Map<string, string[]> {
  const section = text.split(/^## /m).find((s) => s.startsWith('Methods\n'))
  if (!section) throw new Error(`${README}: no "## Methods" section`)
  const lines = section.split('\n')
  const start = lines.findIndex((l) => l.startsWith('| method |'))
  if (start < 0) throw new Error(`${README}: the Methods section has no table starting "| method |"`)
  const header = cells(lines[start])
  const paramsAt = header.indexOf('params')
  if (paramsAt < 0) throw new Error(`${README}: the method table has no "params" column`)
  const rows = new Map<string, string[]>()
  for (const line of lines.slice(start + 2)) {
    if (!line.startsWith('|')) break
    const row = cells(line)
    const name = /^`(\w+)`$/.exec(row[0])?.[1]
    if (!name) continue // the FP32 baseline row
    if (rows.has(name)) throw new Error(`${README}: method ${name} is listed twice`)
    rows.set(
      name,
      [...row[paramsAt].matchAll(/`(\w+)`/g)].map((m) => m[1]),
    )
  }
  return rows
}

describe('README method table', () => {
  const table = readmeMethodTable(readFileSync(README, 'utf8'))
  const catalogue = methodCatalogue()

  it('lists every method of the catalogue and no other', () => {
    expect([...table.keys()].sort()).toEqual(catalogue.map((m) => m.name).sort())
  })

  it('names exactly the parameters each method declares', () => {
    for (const m of catalogue) {
      const named = table.get(m.name) ?? []
      const declared = m.params.map((p) => p.name)
      expect(
        named.filter((n) => !declared.includes(n)),
        `README names params ${m.name} does not have`,
      ).toEqual([])
      expect(
        declared.filter((n) => !named.includes(n)),
        `README's params column for ${m.name} lacks`,
      ).toEqual([])
    }
  })

  it('reads a table the way it is written (escaped pipes stay inside a cell)', () => {
    const t = readmeMethodTable(
      '## Methods\n\n| method | what | params |\n|---|---|---|\n| `a` | x \\| y | `p` `q` |\n| `b` | z | |\n\n## Next\n',
    )
    expect([...t]).toEqual([
      ['a', ['p', 'q']],
      ['b', []],
    ])
  })
})
