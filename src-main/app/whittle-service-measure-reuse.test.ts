// A perplexity measured once is not measured again: the Compress and Prune runs' "before" reuses the Run
// tab's number for the same model, text, seqlen and windows, and the other way round.

import { mkdtempSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import type { JobSpec, JobUpdate, ModelSummary } from '../contract/api'
import { jobResult } from '../contract/job-result'
import { WhittleService } from './whittle-service'

const root = path.resolve(__dirname, '../..')
const tmp = mkdtempSync(path.join(os.tmpdir(), 'whittle-reuse-'))
afterAll(() => rmSync(tmp, { recursive: true, force: true }))

async function call<T>(
  service: WhittleService,
  method: Parameters<WhittleService['handle']>[0],
  params: unknown,
): Promise<T> {
  const r = await service.handle(method, params)
  if (!r.ok) throw new Error(r.error.message)
  return r.result as T
}

/** Runs a job to its end, keeping every progress message it sent. */
async function runJob(service: WhittleService, spec: JobSpec): Promise<{ end: JobUpdate; messages: string[] }> {
  const id = await call<string>(service, 'startJob', spec)
  const messages: string[] = []
  return new Promise((resolve) => {
    const stop = service.onJob((u) => {
      if (u.id !== id) return
      messages.push(u.message)
      if (['done', 'error', 'cancelled'].includes(u.state)) {
        stop()
        resolve({ end: u, messages })
      }
    })
  })
}

describe('measurements reused across views', () => {
  it('compress takes "before" from an earlier perplexity run on the same text, seqlen and windows', async () => {
    const service = new WhittleService({
      mode: 'web',
      version: 'test',
      demoPath: path.join(root, 'resources/demo/stories260K'),
      configDir: tmp,
      exportDir: path.join(tmp, 'exports'),
    })
    const demo = await call<ModelSummary>(service, 'openDemo', {})
    const measured = await runJob(service, { kind: 'perplexity', modelId: demo.id, seqlen: 128, maxWindows: 3 })
    expect(measured.end.state, measured.end.error).toBe('done')
    const ppl = jobResult(measured.end, 'perplexity')!.ppl
    expect(jobResult(measured.end, 'perplexity')!.protocol).toBe('gptq')
    // llama-perplexity's protocol on the same windows is another number, and never the compress view's "before".
    const llama = await runJob(service, {
      kind: 'perplexity',
      modelId: demo.id,
      seqlen: 128,
      maxWindows: 3,
      protocol: 'llama.cpp',
    })
    expect(llama.end.state, llama.end.error).toBe('done')
    expect(jobResult(llama.end, 'perplexity')!.protocol).toBe('llama.cpp')
    expect(jobResult(llama.end, 'perplexity')!.ppl).not.toBe(ppl)
    const refused = await service.handle('startJob', { kind: 'perplexity', modelId: demo.id, protocol: 'lm-eval' })
    expect(refused.ok).toBe(false)
    const recipe = { steps: [{ method: 'rtn', params: { bits: 8 } }] }
    const compressed = await runJob(service, {
      kind: 'compress',
      modelId: demo.id,
      recipe,
      seqlen: 128,
      maxEvalWindows: 3,
    })
    expect(compressed.end.state, compressed.end.error).toBe('done')
    expect(jobResult(compressed.end, 'compress')!.pplBefore).toBe(ppl)
    expect(jobResult(compressed.end, 'compress')!.pplBeforeReused).toBe(true)
    // Another window count is another measurement: measured, not reused.
    const other = jobResult(
      (await runJob(service, { kind: 'compress', modelId: demo.id, recipe, seqlen: 128, maxEvalWindows: 2 })).end,
      'compress',
    )!
    expect(other.pplBeforeReused).toBe(false)
    expect(other.pplBefore).not.toBe(ppl)
  })
})
