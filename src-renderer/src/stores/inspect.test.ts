import { beforeEach, describe, expect, it } from 'vitest'
import { createPinia, setActivePinia } from 'pinia'
import type { ScanResult, TensorDetail } from '@contract/api'
import { provideApi } from '../bridge'
import { FakeEngine, settle, tensorInfo } from '../testing/fake-engine'
import { useInspectStore } from './inspect'
import { useModelStore } from './model'

function detail(name: string): TensorDetail {
  return {
    info: { ...tensorInfo, name },
    stats: {
      count: 16,
      min: -1,
      max: 1,
      mean: 0,
      std: 0.5,
      absmax: 1,
      kurtosis: 3,
      zeroFraction: 0,
      nanCount: 0,
      infCount: 0,
    },
    histogram: { lo: -1, hi: 1, counts: [8, 8], below: 0, above: 0 },
  }
}

let engine: FakeEngine

beforeEach(() => {
  engine = new FakeEngine()
  provideApi(engine)
  setActivePinia(createPinia())
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
    engine.emit({
      id: 'job1',
      kind: 'tensor',
      state: 'error',
      progress: 0.2,
      message: 'x',
      error: 'model.safetensors: truncated at byte 10',
    })
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
