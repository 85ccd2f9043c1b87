import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import type { TensorOutcome } from '../compress/pipeline-types'
import { escapeHtml, renderReportHtml, writeReport } from './report-html'
import type { ExportReport } from './report-json'

const tmp = mkdtempSync(path.join(os.tmpdir(), 'whittle-report-'))
afterAll(() => rmSync(tmp, { recursive: true, force: true }))

function outcome(name: string, relWeightError: number): TensorOutcome {
  return {
    name,
    bitsPerWeight: 4.625,
    format: 'w4 g32 asym',
    step: 0,
    method: 'gptq',
    layer: 0,
    role: 'q',
    shape: [64, 64],
    relWeightError,
    relOutputError: 0.0421,
    sparsity: 0,
  }
}

const report: ExportReport = {
  model: '/models/tiny & "odd"',
  recipe: {
    calibration: { samples: 8, seqlen: 128, seed: 0 } as never,
    steps: [{ method: 'gptq', targets: { include: [], exclude: [] }, params: { bits: 4 } }],
    overrides: {},
  },
  eval: { text: 'eval.txt', seqlen: 256, windows: 12 },
  ppl_before: 12.3456,
  ppl_before_reused: false,
  ppl_after: 13.5802,
  ppl_after_step: [13.5802],
  sparsity: 0,
  params_before: 8192,
  params_after: 8192,
  nonzero_params_after: 8192,
  bits_per_weight: 4.625,
  bytes_before: 1048576,
  bytes_after: 303104,
  bytes_dense_after: 1048576,
  compressed_params: 4096,
  seconds: 7.25,
  tensors: [outcome('model.layers.0.self_attn.q_proj.weight', 0.0876), outcome('<script>alert(1)</script>', 0.5)],
  exportFormat: 'gptq',
  histograms: [
    { name: '<img src=x onerror=alert(1)>', lo: -0.5, hi: 0.5, before: [1, 4, 9, 4, 1], after: [0, 6, 8, 6, 0] },
  ],
}

describe('export report', () => {
  it('writes the JSON and a self-contained HTML page with the numbers, escaped names and SVG histograms', async () => {
    expect(await writeReport(tmp, report)).toEqual(['whittle-report.json', 'whittle-report.html'])
    const json = JSON.parse(readFileSync(path.join(tmp, 'whittle-report.json'), 'utf8'))
    expect(json.ppl_after).toBe(13.5802)
    expect(json.histograms[0].after).toEqual([0, 6, 8, 6, 0])
    const html = readFileSync(path.join(tmp, 'whittle-report.html'), 'utf8')
    for (const s of [
      '12.3456',
      '13.5802',
      '(10.00%)',
      '4.625',
      '1.00 MiB',
      '296.00 KiB',
      '0.0876',
      '0.0421',
      'w4 g32 asym',
      'model.layers.0.self_attn.q_proj.weight',
    ]) {
      expect(html).toContain(s)
    }
    expect(html).not.toContain('<script')
    expect(html).not.toContain('<img')
    expect(html).toContain('&lt;script&gt;alert(1)&lt;/script&gt;')
    expect(html).toContain('&lt;img src=x onerror=alert(1)&gt;')
    expect(html).toContain('/models/tiny &amp; &quot;odd&quot;')
    expect(html.match(/<svg /g)?.length).toBe(1)
    expect(html).not.toMatch(/<link|src="http|href="http/)
    // The method row is words, not JSON; the table uses the same column names as the UI.
    expect(html).toContain('gptq (bits 4)')
    expect(html).not.toContain('{&quot;bits&quot;')
    expect(html).toContain('<th>rel. weight error</th>')
  })

  it('states sparsity, the N:M pattern, parameter counts, the structure change and the cost after each step', () => {
    const pruned = {
      ...outcome('model.layers.1.mlp.up_proj.weight', 0.3),
      method: 'sparsegpt',
      sparsity: 0.5,
      nm: { n: 2, m: 4, violations: 0, groups: 1024, valid: true },
    }
    const broken = {
      ...outcome('model.layers.1.mlp.down_proj.weight', 0.3),
      sparsity: 0.25,
      nm: { n: 2, m: 4, violations: 3, groups: 1024, valid: false },
    }
    const html = renderReportHtml({
      ...report,
      tensors: [pruned, broken],
      sparsity: 0.375,
      params_before: 8192,
      params_after: 6144,
      nonzero_params_after: 4000,
      structure: { layers: [5, 4], heads: [8, 8], kvHeads: [4, 4] },
      ppl_after_step: [13.1, 13.5802],
    })
    for (const s of [
      '2:4 valid',
      '2:4 3 violations',
      '50.0%',
      '37.50%',
      '8192 → 6144',
      '4000',
      '5 → 4 / 8 → 8 / 4 → 4',
      '13.1000 → 13.5802',
    ])
      expect(html).toContain(s)
  })

  it('escapes every HTML-significant character', () => {
    expect(escapeHtml(`<a href='x'>"&"</a>`)).toBe('&lt;a href=&#39;x&#39;&gt;&quot;&amp;&quot;&lt;/a&gt;')
  })

  it('shows dashes and no histogram section when there was no evaluation and no histograms', () => {
    const html = renderReportHtml({ ...report, ppl_before: null, ppl_after: null, eval: null, histograms: undefined })
    expect(html).toMatch(/perplexity before<\/td><td>—</)
    expect(html).toMatch(/perplexity after<\/td><td>—</)
    expect(html).not.toContain('<svg')
    expect(html).not.toContain('13.5802')
  })
})
