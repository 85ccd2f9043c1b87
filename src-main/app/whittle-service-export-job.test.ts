// The Export dialog's path through the service, as the renderer drives it: compress the demo model,
// ask for a destination, run an export job, read the report back; and what the service refuses.

import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import type { ModelSummary } from '../contract/api'
import { jobResult } from '../contract/job-result'
import { EXPORT_FORMATS } from '../engine/export/export-model'
import { call, demoService, runJob } from './testing/service-harness'

const root = path.resolve(__dirname, '../..')
const tmp = mkdtempSync(path.join(os.tmpdir(), 'whittle-export-job-'))
afterAll(() => rmSync(tmp, { recursive: true, force: true }))

describe('export jobs', () => {
  const service = demoService(tmp)

  it('export a compression result as GPTQ, then read its report; the report of any other path is refused', async () => {
    const demo = await call<ModelSummary>(service, 'openDemo', {})
    const compressed = await runJob(service, {
      kind: 'compress',
      modelId: demo.id,
      recipe: { steps: [{ method: 'rtn', params: { bits: 4, group_size: 32 } }] },
      maxEvalWindows: 4,
    })
    expect(compressed.state, compressed.error).toBe('done')
    const modelId = jobResult(compressed, 'compress')!.compressedModelId

    const out = await call<string>(service, 'suggestExportPath', { modelId, format: 'gptq' })
    expect(out).toBe(path.join(tmp, 'exports', 'stories260K-gptq'))
    const exported = await runJob(service, { kind: 'export', modelId, format: 'gptq', out })
    expect(exported.state, exported.error).toBe('done')
    const r = jobResult(exported, 'export')!
    expect(r.files.map((f) => f.name)).toEqual(
      expect.arrayContaining(['model.safetensors', 'config.json', 'whittle-report.html']),
    )
    expect(r.verified).toMatch(/^35 packed Linears decode bit-exactly/)
    const html = await call<string>(service, 'readReport', { path: r.reportPath })
    expect(html).toContain('Whittle compression report')
    // The suggestion moves on once the first destination exists.
    expect(await call<string>(service, 'suggestExportPath', { modelId, format: 'gptq' })).toBe(`${out}-2`)

    await expect(call(service, 'readReport', { path: path.join(root, 'package.json') })).rejects.toThrow(
      /not a report this session exported/,
    )
    // An existing destination fails the job with a clear message and writes nothing.
    mkdirSync(path.join(tmp, 'taken'))
    const refused = await runJob(service, {
      kind: 'export',
      modelId,
      format: 'safetensors',
      out: path.join(tmp, 'taken'),
    })
    expect(refused.state).toBe('error')
    expect(refused.error).toMatch(/already exists/)
    // A model opened from disk exports without a report.
    const plain = await runJob(service, {
      kind: 'export',
      modelId: demo.id,
      format: 'gguf',
      ggufType: 'F16',
      out: path.join(tmp, 'plain'),
    })
    expect(plain.state, plain.error).toBe('done')
    expect(jobResult(plain, 'export')!.reportPath).toBeNull()
    expect(existsSync(path.join(tmp, 'plain', 'stories260K-F16.gguf'))).toBe(true)
  })

  it('validates export requests before running anything', async () => {
    const bad = await service.handle('startJob', { kind: 'export', modelId: 'x', format: 'zip', out: '/tmp/x' })
    expect(bad.ok).toBe(false)
    if (!bad.ok) expect(bad.error.message).toContain(`"format" must be one of ${EXPORT_FORMATS.join(', ')}`)
    const relative = await service.handle('startJob', {
      kind: 'export',
      modelId: 'x',
      format: 'gguf',
      out: 'relative/dir',
    })
    expect(relative.ok).toBe(false)
  })
})
