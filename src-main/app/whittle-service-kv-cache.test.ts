// The 'kv-cache' job through the service: the analysis of the bundled demo model with its default
// settings, and settings the engine cannot read refused before a job starts.

import { mkdtempSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import type { ModelSummary } from '../contract/api'
import { jobResult } from '../contract/job-result'
import { DEFAULT_KV_SETTINGS } from '../engine/analysis/kv-ranges'
import { demoService, runJob } from './testing/service-harness'
import type { WhittleService } from './whittle-service'

const tmp = mkdtempSync(path.join(os.tmpdir(), 'whittle-kv-'))
afterAll(() => rmSync(tmp, { recursive: true, force: true }))

async function call<T>(s: WhittleService, method: Parameters<WhittleService['handle']>[0], params: unknown) {
  const r = await s.handle(method, params)
  return r.ok ? { ok: true as const, result: r.result as T } : { ok: false as const, code: r.error.code }
}

describe('kv-cache job', () => {
  it('measures every default setting and the ranges of every layer and kv head', async () => {
    const s = demoService(tmp)
    const opened = await call<ModelSummary>(s, 'openDemo', {})
    if (!opened.ok) throw new Error(opened.code)
    const end = await runJob(s, { kind: 'kv-cache', modelId: opened.result.id, seqlen: 128, maxWindows: 2 })
    expect(end.state, end.error).toBe('done')
    const r = jobResult(end, 'kv-cache')!
    expect(r.schemes.map((x) => x.setting)).toEqual(DEFAULT_KV_SETTINGS)
    expect(r.contextLength).toBe(128)
    expect(r.heads).toHaveLength(r.layers * r.kvHeads)
    for (const x of r.schemes) expect(x.ppl).toBeGreaterThan(0)
    // Fewer bits cost more: token:2 is worse than token:8.
    const ppl = (name: string) => r.schemes.find((x) => x.setting === name)!.ppl!
    expect(ppl('token:2')).toBeGreaterThan(ppl('token:8'))
  }, 600_000)

  it('refuses a malformed setting as a validation error', async () => {
    const s = demoService(tmp)
    const opened = await call<ModelSummary>(s, 'openDemo', {})
    if (!opened.ok) throw new Error(opened.code)
    const r = await call(s, 'startJob', { kind: 'kv-cache', modelId: opened.result.id, settings: ['token:99'] })
    expect(r).toEqual({ ok: false, code: 'validation' })
    const notList = await call(s, 'startJob', { kind: 'kv-cache', modelId: opened.result.id, settings: 'q8_0' })
    expect(notList).toEqual({ ok: false, code: 'validation' })
  })
})
