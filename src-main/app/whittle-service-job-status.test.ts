import { mkdtempSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import type { JobUpdate, ModelSummary } from '../contract/api'
import { call, demoService } from './testing/service-harness'

const tmp = mkdtempSync(path.join(os.tmpdir(), 'whittle-job-status-'))
const service = demoService(tmp)
afterAll(() => rmSync(tmp, { recursive: true, force: true }))

describe('jobStatus', () => {
  it('answers a job’s latest update, the same one the last pushed event carried', async () => {
    const model = await call<ModelSummary>(service, 'openDemo', undefined)
    let last: JobUpdate | null = null
    const stop = service.onJob((u) => (last = u))
    const id = await call<string>(service, 'startJob', { kind: 'scan', modelId: model.id })
    const ended = await new Promise<JobUpdate>((resolve) => {
      const off = service.onJob((u) => {
        if (u.id === id && u.state === 'done') {
          off()
          resolve(u)
        }
      })
    })
    stop()
    const status = await call<JobUpdate | null>(service, 'jobStatus', { id })
    expect(status).toEqual(ended)
    expect(last).toEqual(ended)
  })

  it('answers null for a job it does not know, and refuses a malformed request', async () => {
    await expect(call(service, 'jobStatus', { id: 'no-such-job' })).resolves.toBeNull()
    await expect(call(service, 'jobStatus', { id: 7 })).rejects.toThrow()
    await expect(call(service, 'jobStatus', { id: 'x', extra: 1 })).rejects.toThrow()
  })
})
