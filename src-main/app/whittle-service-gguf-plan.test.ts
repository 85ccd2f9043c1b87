// The Export dialog's GGUF options through the service, as the renderer sends them: the mix table's plan
// (planGgufExport) for the demo model, an export job carrying the flags whose written file has the planned
// types, and the refusal of malformed flags before anything runs.

import { mkdtempSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import type { JobSpec, ModelSummary } from '../contract/api'
import type { GgufExportPlan } from '../contract/gguf-export-types'
import { jobResult } from '../contract/job-result'
import { readGguf } from '../engine/formats/gguf'
import { ggmlTypeById } from '../engine/formats/ggml-types'
import { call, demoService, runJob } from './testing/service-harness'

const tmp = mkdtempSync(path.join(os.tmpdir(), 'whittle-gguf-plan-'))
afterAll(() => rmSync(tmp, { recursive: true, force: true }))

describe('GGUF type flags through the service', () => {
  const service = demoService(tmp)

  it('plans the mix table, then an export job with the same flags writes exactly the planned types', async () => {
    const demo = await call<ModelSummary>(service, 'openDemo', {})
    const gguf = { tensorTypes: [{ pattern: 'attn_q', type: 'Q8_0' }], outputTensorType: 'Q4_0' }
    const plan = await call<GgufExportPlan>(service, 'planGgufExport', { modelId: demo.id, ggufType: 'Q4_K_M', gguf })
    expect(plan.type).toBe('Q4_K_M')
    const by = Object.fromEntries(plan.tensors.map((t) => [t.name, t]))
    expect(by['blk.0.attn_q.weight']).toMatchObject({ type: 'Q8_0', rule: 'tensor-type', pattern: 'attn_q' })
    expect(by['output.weight']).toMatchObject({ type: 'Q4_0', rule: 'output-tensor-type' })
    // stories260K's rows (64 and 172 elements) fit no 256-element block: the K-quants fall back.
    expect(plan.tensors.filter((t) => t.fallback).length).toBeGreaterThan(0)
    expect(plan.bytes).toBe(plan.tensors.reduce((n, t) => n + t.bytes, 0))

    const out = path.join(tmp, 'flags')
    const done = await runJob(service, {
      kind: 'export',
      modelId: demo.id,
      format: 'gguf',
      ggufType: 'Q4_K_M',
      gguf,
      out,
    } as JobSpec)
    expect(done.state, done.error).toBe('done')
    const file = jobResult(done, 'export')!.files.find((f) => f.name.endsWith('.gguf'))!.name
    const written = await readGguf(path.join(out, file))
    for (const info of written.infos)
      expect(`${info.name} ${ggmlTypeById(info.ggmlType)?.name}`).toBe(`${info.name} ${by[info.name].type}`)
  })

  it('refuses malformed flags as validation errors, before any work', async () => {
    const demo = await call<ModelSummary>(service, 'openDemo', {})
    const bad: unknown[] = [
      { pure: 'yes' },
      { outputTensorType: 'Q9' },
      { tensorTypes: [{ pattern: '(', type: 'Q8_0' }] },
      { tensorTypes: [{ pattern: 'x', type: 'Q8_0', extra: 1 }] },
      { sneaky: true },
      [],
    ]
    for (const gguf of bad) {
      const planned = await service.handle('planGgufExport', { modelId: demo.id, ggufType: 'Q4_K_M', gguf })
      expect(planned.ok, JSON.stringify(gguf)).toBe(false)
      if (!planned.ok) expect(planned.error.code).toBe('validation')
      const job = await service.handle('startJob', {
        kind: 'export',
        modelId: demo.id,
        format: 'gguf',
        ggufType: 'Q4_K_M',
        gguf,
        out: path.join(tmp, 'never'),
      })
      expect(job.ok, JSON.stringify(gguf)).toBe(false)
    }
    const wrongType = await service.handle('planGgufExport', { modelId: demo.id, ggufType: 'Q3_X' })
    expect(wrongType.ok).toBe(false)
  })
})
