import { describe, expect, it } from 'vitest'
import type { JobUpdate, ScanResult } from './api'
import { jobResult } from './job-result'

const scan: ScanResult = { modelId: 'm', k: 6, cells: [], seconds: 0.5, bytes: 10 }

describe('jobResult', () => {
  it('gives the result of a finished job of the asked kind', () => {
    const done: JobUpdate = { id: 'j', kind: 'scan', state: 'done', progress: 1, message: 'done', result: scan }
    expect(jobResult(done, 'scan')).toBe(scan)
  })

  it('gives nothing for another kind, an unfinished job or a failed one', () => {
    const done: JobUpdate = { id: 'j', kind: 'scan', state: 'done', progress: 1, message: 'done', result: scan }
    expect(jobResult(done, 'tensor')).toBeUndefined()
    expect(jobResult(done, 'heads')).toBeUndefined()
    const running: JobUpdate = { id: 'j', kind: 'scan', state: 'running', progress: 0.5, message: 'half', result: scan }
    expect(jobResult(running, 'scan')).toBeUndefined()
    const failed: JobUpdate = { id: 'j', kind: 'scan', state: 'error', progress: 0.5, message: 'x', error: 'x' }
    expect(jobResult(failed, 'scan')).toBeUndefined()
  })
})
