import { beforeEach, describe, expect, it, vi } from 'vitest'
import type { JobUpdate } from '@contract/api'
import { createPinia, setActivePinia } from 'pinia'
import { provideApi } from '../bridge'
import { FakeEngine } from '../testing/fake-engine'
import { STATUS_POLL_MS, useJobStore } from './jobs'

let engine: FakeEngine

beforeEach(() => {
  engine = new FakeEngine()
  provideApi(engine)
  setActivePinia(createPinia())
})

describe('jobs store', () => {
  it('finds a job whose end arrived before startJob answered', async () => {
    const jobs = useJobStore()
    engine.onStart = (id) => engine.emit({ id, kind: 'scan', state: 'done', progress: 1, message: 'done' })
    const id = await jobs.start({ kind: 'scan', modelId: 'm' })
    await expect(jobs.whenFinished(id)).resolves.toMatchObject({ id, state: 'done' })
  })

  it('does not let a late progress event revive a finished job', async () => {
    const jobs = useJobStore()
    const id = await jobs.start({ kind: 'scan', modelId: 'm' })
    engine.emit({ id, kind: 'scan', state: 'error', progress: 0.3, message: 'boom', error: 'disk said no' })
    engine.emit({ id, kind: 'scan', state: 'running', progress: 0.4, message: 'late' })
    expect(jobs.get(id)?.state).toBe('error')
  })

  it('shows running and failed jobs in the bar, finished ones not, failures until dismissed', async () => {
    const jobs = useJobStore()
    const a = await jobs.start({ kind: 'scan', modelId: 'm' })
    const b = await jobs.start({ kind: 'tensor', modelId: 'm', name: 'w' })
    const c = await jobs.start({ kind: 'tensor', modelId: 'm', name: 'v' })
    engine.emit({ id: a, kind: 'scan', state: 'running', progress: 0.5, message: 'half' })
    engine.emit({ id: b, kind: 'tensor', state: 'done', progress: 1, message: 'done' })
    engine.emit({ id: c, kind: 'tensor', state: 'error', progress: 0, message: 'bad', error: 'bad' })
    expect(jobs.visible.map((u) => u.id)).toEqual([a, c])
    expect(jobs.subjects.get(c)).toBe('v')
    jobs.dismiss(c)
    expect(jobs.visible.map((u) => u.id)).toEqual([a])
  })
})

describe('jobs store, when a pushed update is lost', () => {
  it('asks the engine while a job runs, and applies an end that never arrived', async () => {
    vi.useFakeTimers()
    try {
      const jobs = useJobStore()
      const id = await jobs.start({ kind: 'scan', modelId: 'm' })
      let finished: JobUpdate | null = null
      void jobs.whenFinished(id).then((u) => (finished = u))
      engine.dropEvents = true
      engine.emit({ id, kind: 'scan', state: 'error', progress: 0.2, message: 'disk said no', error: 'disk said no' })
      expect(jobs.get(id)?.state).toBe('queued')
      await vi.advanceTimersByTimeAsync(STATUS_POLL_MS + 10)
      expect(finished).toMatchObject({ id, state: 'error', error: 'disk said no' })
      expect(jobs.get(id)?.state).toBe('error')
    } finally {
      vi.useRealTimers()
    }
  })

  it('ends a job the engine no longer knows (a restarted engine) with an error, not a wait', async () => {
    vi.useFakeTimers()
    try {
      const jobs = useJobStore()
      const id = await jobs.start({ kind: 'scan', modelId: 'm' })
      engine.statuses.clear()
      await vi.advanceTimersByTimeAsync(STATUS_POLL_MS + 10)
      expect(jobs.get(id)).toMatchObject({ state: 'error' })
      expect(jobs.get(id)?.error).toMatch(/no longer knows/)
    } finally {
      vi.useRealTimers()
    }
  })

  it('keeps waiting while the engine cannot be reached', async () => {
    vi.useFakeTimers()
    try {
      const jobs = useJobStore()
      const id = await jobs.start({ kind: 'scan', modelId: 'm' })
      engine.jobStatus = async () => {
        throw new Error('jobStatus: lost the connection to the Whittle server')
      }
      await vi.advanceTimersByTimeAsync(3 * STATUS_POLL_MS)
      expect(jobs.get(id)?.state).toBe('queued')
    } finally {
      vi.useRealTimers()
    }
  })
})
