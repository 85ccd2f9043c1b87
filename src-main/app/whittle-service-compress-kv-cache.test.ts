// A recipe's kv_cache through the service, as the Compress view runs it: perplexity after is measured with
// the quantized cache (and differs from a run without it), equals what the KV-cache analysis measures on
// the same compressed model, and the exported report carries the setting with llama.cpp's flags for a
// GGUF export (none for a scheme llama.cpp lacks). `whittle eval --kv` of an export: cli/compress-command-kv-cache.test.ts.

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import type { CompressionSummary, JobUpdate, ModelSummary, RecipeDoc } from '../contract/api'
import { jobResult } from '../contract/job-result'
import { call, demoService, runJob } from './testing/service-harness'

const root = path.resolve(__dirname, '../..')
const tmp = mkdtempSync(path.join(os.tmpdir(), 'whittle-compress-kv-'))
afterAll(() => rmSync(tmp, { recursive: true, force: true }))
// The start of the bundled eval text: tokenizing all of it for every run would take most of the test.
const evalText = path.join(tmp, 'eval.txt')
writeFileSync(evalText, readFileSync(path.join(root, 'resources/text/tinystories_eval.txt'), 'utf8').slice(0, 12_000))

/** Few short windows keep each perplexity to milliseconds on the demo model. */
const SEQLEN = 128
const WINDOWS = 3
const STEPS: RecipeDoc['steps'] = [{ method: 'rtn', params: { bits: 4, group_size: 32 } }]

function relDiff(a: number, b: number): number {
  return Math.abs(a / b - 1)
}

describe('compress with a recipe kv_cache', () => {
  const service = demoService(tmp)
  let demo: ModelSummary

  async function compress(recipe: RecipeDoc): Promise<CompressionSummary> {
    demo ??= await call<ModelSummary>(service, 'openDemo', {})
    const end = await runJob(service, {
      kind: 'compress',
      modelId: demo.id,
      recipe,
      evalText,
      seqlen: SEQLEN,
      maxEvalWindows: WINDOWS,
    })
    expect(end.state, end.error).toBe('done')
    return jobResult(end, 'compress')!
  }

  async function exportReport(modelId: string, format: 'safetensors' | 'gguf', name: string) {
    const end = await runJob(service, { kind: 'export', modelId, format, out: path.join(tmp, 'exports', name) })
    expect(end.state, end.error).toBe('done')
    const r = jobResult(end, 'export')!
    return JSON.parse(readFileSync(path.join(path.dirname(r.reportPath!), 'whittle-report.json'), 'utf8'))
  }

  it('measures perplexity after with the cache, as the KV-cache analysis does', async () => {
    const withKv = await compress({ steps: STEPS, kv_cache: 'token:4' })
    const without = await compress({ steps: STEPS })
    // Before is the source model with its own unquantized cache, in both runs.
    expect(withKv.pplBefore).toBe(without.pplBefore)
    // A 4-bit token cache costs perplexity on top of the 4-bit weights.
    expect(withKv.pplAfter!).toBeGreaterThan(without.pplAfter! * 1.01)
    expect(withKv.pplAfterStep).toEqual([withKv.pplAfter])

    // The KV-cache analysis of the compressed model: the same setting, the same windows.
    const analysis = await runJob(service, {
      kind: 'kv-cache',
      modelId: withKv.compressedModelId,
      text: evalText,
      seqlen: SEQLEN,
      maxWindows: WINDOWS,
      settings: ['token:4'],
    })
    expect(analysis.state, analysis.error).toBe('done')
    const measured = jobResult(analysis, 'kv-cache')!
    expect(relDiff(measured.schemes[0].ppl!, withKv.pplAfter!)).toBeLessThan(1e-12)
    expect(relDiff(measured.baselinePpl, without.pplAfter!)).toBeLessThan(1e-12)

    // Exported, its report carries the setting (llama.cpp has no token cache type: no flags).
    const report = await exportReport(withKv.compressedModelId, 'safetensors', 'token4')
    expect(report.recipe.kv_cache).toBe('token:4')
    expect(report.ppl_after).toBe(withKv.pplAfter)
    // 5 layers × 4 kv heads × (K, V) × (4·8 bits + 32 bits of scale and minimum) = 320 bytes per token.
    expect(report.kv_cache).toMatchObject({
      scheme: 'token:4',
      bytes_per_token: 320,
      baseline_bytes_per_token: 640,
      context_length: SEQLEN,
      llama_cpp: null,
    })
    const html = readFileSync(path.join(tmp, 'exports', 'token4', 'whittle-report.html'), 'utf8')
    expect(html).toContain('llama.cpp: none (llama.cpp has no token cache type)')
  }, 600_000)

  it("names llama.cpp's cache flags in a GGUF export's report", async () => {
    const summary = await compress({ steps: STEPS, kv_cache: 'q8_0' })
    const report = await exportReport(summary.compressedModelId, 'gguf', 'q8-kv')
    expect(report.export_format).toMatch(/^gguf /)
    expect(report.kv_cache.scheme).toBe('q8_0')
    expect(report.kv_cache.llama_cpp).toBe('--cache-type-k q8_0 --cache-type-v q8_0 -fa on')
    // stories260K's head_dim of 8 holds no 32-value q8_0 block: the report says where the blocks ran.
    expect(report.kv_cache.note).toMatch(/llama\.cpp would refuse/)
    const html = readFileSync(path.join(tmp, 'exports', 'q8-kv', 'whittle-report.html'), 'utf8')
    expect(html).toContain('--cache-type-k q8_0 --cache-type-v q8_0 -fa on')
  }, 600_000)

  it('fails a run whose kv_cache eval --kv would refuse, naming the field', async () => {
    demo ??= await call<ModelSummary>(service, 'openDemo', {})
    // Polled rather than awaited through onJob: a run refused this early can end before a listener is attached.
    const id = await call<string>(service, 'startJob', {
      kind: 'compress',
      modelId: demo.id,
      recipe: { steps: STEPS, kv_cache: 'token:12' },
    })
    let end = await call<JobUpdate | null>(service, 'jobStatus', { id })
    while (end && !['done', 'error', 'cancelled'].includes(end.state)) {
      await new Promise((resolve) => setTimeout(resolve, 20))
      end = await call<JobUpdate | null>(service, 'jobStatus', { id })
    }
    expect(end?.state).toBe('error')
    expect(end?.error).toMatch(/recipe kv_cache: .*bits must be an integer from 1 to 8/)
    // The Compress view's check of the recipe says the same before a run.
    await expect(call(service, 'checkRecipe', { recipe: { steps: STEPS, kv_cache: 'token:12' } })).rejects.toThrow(
      /recipe kv_cache: .*bits must be an integer from 1 to 8/,
    )
  })
})
