import { beforeEach, describe, expect, it } from 'vitest'
import { createPinia, setActivePinia } from 'pinia'
import type { ScanResult, TensorDetail } from '@contract/api'
import { provideApi } from '../bridge'
import { FakeEngine, settle, tensorInfo } from '../test/fake-engine'
import { useErrorStore } from './errors'
import { useInspectStore } from './inspect'
import { useJobStore } from './jobs'
import { useModelStore } from './model'

function detail(name: string): TensorDetail {
  return {
    info: { ...tensorInfo, name },
    stats: { count: 16, min: -1, max: 1, mean: 0, std: 0.5, absmax: 1, kurtosis: 3, zeroFraction: 0, nanCount: 0, infCount: 0 },
    histogram: { lo: -1, hi: 1, counts: [8, 8], below: 0, above: 0 },
  }
}

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

describe('model store', () => {
  it('opens the demo on first start when the host has one', async () => {
    const model = useModelStore()
    await model.init()
    expect(engine.opened).toEqual(['demo'])
    expect(model.summary?.id).toBe('id:demo')
    expect(model.tensors).toEqual([tensorInfo])
    expect(model.displayName).toBe('demo')
  })

  it('prefers the model named on the command line, and opens nothing when neither exists', async () => {
    engine.info = { ...engine.info, startupPath: '/models/tiny' }
    await useModelStore().init()
    expect(engine.opened).toEqual(['/models/tiny'])

    setActivePinia(createPinia())
    engine.opened = []
    engine.info = { ...engine.info, startupPath: null, demoPath: null }
    await useModelStore().init()
    expect(engine.opened).toEqual([])
  })

  it('reports a failed open with its path and keeps the model that was open', async () => {
    const model = useModelStore()
    const errors = useErrorStore()
    await model.open('/models/a')
    expect(await model.open('/missing/model.safetensors')).toBe(false)
    expect(model.summary?.path).toBe('/models/a')
    expect(model.error).toContain('/missing/model.safetensors')
    expect(errors.errors.map((e) => e.message)).toEqual(['/missing/model.safetensors: no such file or folder'])
    expect(model.loading).toBe(false)
    // Opening another model takes the banner about the failed one away.
    expect(await model.open('/models/b')).toBe(true)
    expect(errors.errors).toEqual([])
  })

  it('lets the newest open win when an older one finishes later', async () => {
    const model = useModelStore()
    let release!: () => void
    engine.gates.set('/slow', new Promise((r) => (release = r)))
    const slow = model.open('/slow')
    await model.open('/fast')
    release()
    await slow
    expect(model.summary?.path).toBe('/fast')
  })

  it('refuses an empty path without calling the engine', async () => {
    const model = useModelStore()
    expect(await model.open('   ')).toBe(false)
    expect(engine.opened).toEqual([])
    expect(useErrorStore().errors).toHaveLength(1)
  })
})

describe('inspect store', () => {
  async function withModel(): Promise<void> {
    await useModelStore().open('/models/a')
  }

  it('starts a tensor job with the model, name and k, and shows its result', async () => {
    await withModel()
    const inspect = useInspectStore()
    inspect.k = 4
    const done = inspect.selectTensor('w')
    await settle()
    expect(inspect.tab).toBe('tensor')
    expect(inspect.detailLoading).toBe(true)
    expect(engine.started.map((s) => s.spec)).toEqual([{ kind: 'tensor', modelId: 'id:/models/a', name: 'w', k: 4 }])
    engine.emit({ id: 'job1', kind: 'tensor', state: 'done', progress: 1, message: 'done', result: detail('w') })
    await done
    expect(inspect.detail?.info.name).toBe('w')
    expect(inspect.detailLoading).toBe(false)

    // Choosing it again reuses what is shown.
    await inspect.selectTensor('w')
    expect(engine.started).toHaveLength(1)
  })

  it('cancels the previous tensor job when another tensor is chosen, and ignores its result', async () => {
    await withModel()
    const inspect = useInspectStore()
    const first = inspect.selectTensor('a')
    await settle()
    const second = inspect.selectTensor('b')
    await settle()
    expect(engine.cancelled).toEqual(['job1'])
    engine.emit({ id: 'job2', kind: 'tensor', state: 'done', progress: 1, message: 'done', result: detail('b') })
    await Promise.all([first, second])
    expect(inspect.selectedName).toBe('b')
    expect(inspect.detail?.info.name).toBe('b')
    expect(inspect.detailFailure).toBeNull()
  })

  it('shows a failed job as a readable failure', async () => {
    await withModel()
    const inspect = useInspectStore()
    const p = inspect.selectTensor('w')
    await settle()
    engine.emit({ id: 'job1', kind: 'tensor', state: 'error', progress: 0.2, message: 'x', error: 'model.safetensors: truncated at byte 10' })
    await p
    expect(inspect.detail).toBeNull()
    expect(inspect.detailFailure).toBe('model.safetensors: truncated at byte 10')
  })

  it('runs a scan with k and keeps its result until another model is opened', async () => {
    await withModel()
    const inspect = useInspectStore()
    inspect.k = 2.5
    const result: ScanResult = { modelId: 'id:/models/a', k: 2.5, cells: [], seconds: 0.1, bytes: 64 }
    engine.onStart = (id, spec) => {
      if (spec.kind === 'scan') engine.emit({ id, kind: 'scan', state: 'done', progress: 1, message: 'done', result })
    }
    await inspect.runScan()
    expect(engine.started[0].spec).toEqual({ kind: 'scan', modelId: 'id:/models/a', k: 2.5 })
    expect(inspect.scan).toEqual(result)
    expect(inspect.scanning).toBe(false)

    await useModelStore().open('/models/b')
    await settle()
    expect(inspect.scan).toBeNull()
    expect(inspect.tab).toBe('overview')
  })

  it('clamps an absurd k to what the engine accepts', async () => {
    await withModel()
    const inspect = useInspectStore()
    inspect.k = 1e9
    void inspect.runScan()
    await settle()
    expect(engine.started[0].spec).toEqual({ kind: 'scan', modelId: 'id:/models/a', k: 1000 })
  })
})
