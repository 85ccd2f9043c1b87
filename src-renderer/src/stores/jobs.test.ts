import { beforeEach, describe, expect, it } from 'vitest'
import { createPinia, setActivePinia } from 'pinia'
import { provideApi } from '../bridge'
import { FakeEngine } from '../testing/fake-engine'
import { useJobStore } from './jobs'

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
