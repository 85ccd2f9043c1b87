// The export report: whittle-report.json (the numbers, see report-json.ts) and whittle-report.html, a single self-contained
// page (inline CSS, inline SVG, no scripts) that opens offline. Every string that came from a file or a
// recipe — tensor names above all — is HTML-escaped, so a hostile checkpoint cannot inject markup.

import { writeFile } from 'node:fs/promises'
import path from 'node:path'
import { describeParams } from '../../contract/describe-params'
import { TENSOR_COLUMNS } from '../../contract/tensor-columns'
import { formatBytes } from '../../contract/units'
import type { KvCacheReport } from '../analysis/kv-ranges'
import { REPORT_JSON_FILE, reportJson, type ExportReport, type HistogramPair } from './report-json'

export function escapeHtml(s: string): string {
  return s.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string,
  )
}

function num(x: number | null | undefined, digits = 4): string {
  if (x === null || x === undefined || !Number.isFinite(x)) return '—'
  return Math.abs(x) >= 1e5 || (x !== 0 && Math.abs(x) < 1e-3) ? x.toExponential(digits - 1) : x.toFixed(digits)
}

/** Two overlaid step outlines (before grey, after orange) of one histogram, as inline SVG. */
export function histogramSvg(h: HistogramPair, width = 360, height = 140): string {
  const pad = 24
  const bins = Math.max(h.before.length, h.after.length)
  const peak = Math.max(1, ...h.before.filter(Number.isFinite), ...h.after.filter(Number.isFinite))
  const x = (i: number): number => pad + ((width - 2 * pad) * i) / Math.max(1, bins)
  const y = (c: number): number => height - pad - ((height - 2 * pad) * (Number.isFinite(c) ? c : 0)) / peak
  const outline = (counts: number[]): string => {
    let d = `M${x(0).toFixed(1)},${y(0).toFixed(1)}`
    counts.forEach((c, i) => {
      d += ` L${x(i).toFixed(1)},${y(c).toFixed(1)} L${x(i + 1).toFixed(1)},${y(c).toFixed(1)}`
    })
    return d + ` L${x(counts.length).toFixed(1)},${y(0).toFixed(1)}`
  }
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-label="histogram of ${escapeHtml(h.name)}">` +
    `<line x1="${pad}" y1="${height - pad}" x2="${width - pad}" y2="${height - pad}" stroke="#999"/>` +
    `<path d="${outline(h.before)}" fill="#8884" stroke="#666"/>` +
    `<path d="${outline(h.after)}" fill="none" stroke="#e8590c" stroke-width="1.5"/>` +
    `<text x="${pad}" y="${height - 6}" font-size="10">${escapeHtml(num(h.lo))}</text>` +
    `<text x="${width - pad}" y="${height - 6}" font-size="10" text-anchor="end">${escapeHtml(num(h.hi))}</text>` +
    '</svg>'
  )
}

/** The recipe's KV cache in one line (this page and `whittle compress`): what it stores, and llama.cpp's flags. */
export function kvCacheLine(kv: KvCacheReport): string {
  const llamaCpp = kv.llama_cpp ?? `none (llama.cpp has no ${kv.scheme.split(':')[0]} cache type)`
  return (
    `${kv.scheme}: keys ${num(kv.key_bits, 2)}, values ${num(kv.value_bits, 2)} bits per value; ` +
    `${Math.round(kv.bytes_per_token)} B per token of context against ${Math.round(kv.baseline_bytes_per_token)} B in f16; ` +
    `llama.cpp: ${llamaCpp}` +
    (kv.note ? `; ${kv.note}` : '')
  )
}

const CSS = `body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse}td,th{padding:.25em .7em;border-bottom:1px solid #eee;text-align:right}
td:first-child,th:first-child{text-align:left;font-family:ui-monospace,monospace}
.kv td:first-child{font-family:inherit;color:#555}.hist{display:inline-block;margin:.5em 1em .5em 0}
.hist div{font-family:ui-monospace,monospace;font-size:12px}.legend span{margin-right:1em}`

export function renderReportHtml(r: ExportReport): string {
  const e = escapeHtml
  const steps = r.recipe.steps.map((s) => `${s.method} (${describeParams(s.params ?? {})})`).join('; ')
  const pplDelta =
    r.ppl_before !== null && r.ppl_after !== null ? ` (${((r.ppl_after / r.ppl_before - 1) * 100).toFixed(2)}%)` : ''
  const summary: [string, string][] = [
    ['model', r.model],
    ['method', steps],
    ...(r.exportFormat ? [['export format', r.exportFormat] as [string, string]] : []),
    ['perplexity before', num(r.ppl_before)],
    ['perplexity after', `${num(r.ppl_after)}${pplDelta}`],
    ['eval text', r.eval ? `${r.eval.text} (seqlen ${r.eval.seqlen}, ${r.eval.windows} windows)` : 'none'],
    ...(r.kv_cache
      ? [['KV cache (perplexity after measured with it)', kvCacheLine(r.kv_cache)] as [string, string]]
      : []),
    ['size before', formatBytes(r.bytes_before)],
    ['size after, stored compactly (GPTQ, compressed-tensors, GGUF)', formatBytes(r.bytes_after)],
    ['size after, as dense safetensors', formatBytes(r.bytes_dense_after)],
    ['bits per weight', num(r.bits_per_weight, 3)],
    ['compressed parameters', String(r.compressed_params)],
    ['parameters before → after', `${r.params_before} → ${r.params_after}`],
    ['non-zero parameters after', String(r.nonzero_params_after)],
    ['sparsity of the compressed Linears', `${(r.sparsity * 100).toFixed(2)}%`],
    ...(r.structure
      ? [
          [
            'layers / heads / kv heads',
            `${r.structure.layers.join(' → ')} / ${r.structure.heads.join(' → ')} / ${r.structure.kvHeads.join(' → ')}`,
          ] as [string, string],
        ]
      : []),
    ...(r.ppl_after_step.length > 1
      ? [['perplexity after each step', r.ppl_after_step.map((p) => num(p)).join(' → ')] as [string, string]]
      : []),
    ...(r.training ?? []).map((t): [string, string] => [
      `training, step ${t.step + 1} (${t.method})`,
      `loss ${num(t.firstLoss)} → ${num(t.lastLoss)} over ${t.steps} steps, ${t.tokens} tokens, ${num(t.seconds, 1)} s` +
        (t.evals?.length ? `; eval ppl ${t.evals.map((e) => `${e.step}: ${num(e.ppl)}`).join(', ')}` : '') +
        (t.bestStep !== undefined ? `; best checkpoint kept: step ${t.bestStep}` : ''),
    ]),
    ['time', `${num(r.seconds, 1)} s`],
  ]
  const pattern = (t: ExportReport['tensors'][number]): string =>
    t.nm
      ? `${t.nm.n}:${t.nm.m} ${t.nm.valid ? 'valid' : `${t.nm.violations} violations`}`
      : t.sparsity > 0
        ? 'unstructured'
        : ''
  // The order of the cells below; the header is built from it and the shared column names.
  const REPORT_COLUMNS = [
    'name',
    'method',
    'format',
    'shape',
    'bitsPerWeight',
    'sparsity',
    'pattern',
    'relWeightError',
    'relOutputError',
  ] as const
  const rows = r.tensors
    .map(
      (t) =>
        `<tr><td>${e(t.name)}</td><td>${e(t.method)}</td><td>${e(t.format)}</td><td>${t.shape.join('×')}</td>` +
        `<td>${num(t.bitsPerWeight, 3)}</td><td>${(t.sparsity * 100).toFixed(1)}%</td><td>${e(pattern(t))}</td><td>${num(t.relWeightError)}</td><td>${num(t.relOutputError)}</td></tr>`,
    )
    .join('\n')
  const hists = (r.histograms ?? [])
    .map((h) => `<div class="hist">${histogramSvg(h)}<div>${e(h.name)}</div></div>`)
    .join('\n')
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Whittle report — ${e(r.model)}</title>
<style>${CSS}</style></head><body>
<h1>Whittle compression report</h1>
<table class="kv">${summary.map(([k, v]) => `<tr><td>${e(k)}</td><td>${e(v)}</td></tr>`).join('')}</table>
<h2>Per-tensor error</h2>
<table><thead><tr>${REPORT_COLUMNS.map((k) => `<th>${e(TENSOR_COLUMNS[k])}</th>`).join('')}</tr></thead>
<tbody>
${rows}
</tbody></table>
${hists ? `<h2>Most affected tensors: value histograms</h2><p class="legend"><span style="color:#666">■ before</span><span style="color:#e8590c">▬ after</span></p>\n${hists}` : ''}
</body></html>
`
}

/** Writes whittle-report.json and whittle-report.html into dir; returns the file names. */
export async function writeReport(dir: string, report: ExportReport): Promise<string[]> {
  await writeFile(path.join(dir, REPORT_JSON_FILE), JSON.stringify(reportJson(report), null, 1) + '\n')
  await writeFile(path.join(dir, 'whittle-report.html'), renderReportHtml(report))
  return [REPORT_JSON_FILE, 'whittle-report.html']
}
