import { beforeEach, describe, expect, it } from 'vitest'
import { createPinia, setActivePinia } from 'pinia'
import type { ImatrixProfile, ImatrixTensorProfile } from '@contract/api'
import { provideApi } from '../bridge'
import { FakeEngine } from '../testing/fake-engine'
import { useErrorStore } from './errors'
import { useImatrixStore } from './imatrix'
import { useModelStore } from './model'

function entry(layer: number, role: 'q' | 'k' | 'down', meanSq: number[]): ImatrixTensorProfile {
  const group = role === 'down' ? 'down' : 'qkv'
  return { name: `blk.${layer}.${role}`, layer, role, group, tensor: `m.${layer}.${role}`, meanSq, count: 8 }
}

const profile: ImatrixProfile = {
  path: '/m/imatrix.gguf',
  format: 'gguf',
  chunkCount: 2,
  chunkSize: 64,
  datasets: ['calib.txt'],
  tensors: [entry(2, 'q', [1]), entry(2, 'k', [1]), entry(2, 'down', [2]), entry(3, 'down', [4])],
}

let engine: FakeEngine
beforeEach(() => {
  engine = new FakeEngine()
  engine.imatrices.set(profile.path, profile)
  provideApi(engine)
  setActivePinia(createPinia())
})

describe('imatrix store', () => {
  it('reads the file for the open model and shows its first entry', async () => {
    const model = useModelStore()
    await model.open('/models/a')
    const s = useImatrixStore()
    await s.open(' /m/imatrix.gguf ')
    expect(engine.imatrixReads).toEqual([{ path: '/m/imatrix.gguf', modelId: model.summary!.id }])
    expect(s.slot.profile).toEqual(profile)
    expect(s.selected).toEqual({ layer: 2, role: 'q' })
    // A layer without the role on show starts at its first entry.
    s.select(3)
    expect(s.selected).toEqual({ layer: 3, role: 'down' })
  })

  it('links both ways with the activation view, by input group', async () => {
    const s = useImatrixStore()
    await s.open(profile.path)
    expect(s.showInput(2, 'down')).toBe(true)
    expect(s.selected).toEqual({ layer: 2, role: 'down' })
    expect(s.showInput(3, 'qkv')).toBe(false)
    expect(s.selected).toEqual({ layer: 2, role: 'down' })
    s.focusActivations(2, 'qkv')
    const first = s.activationFocus!
    s.focusActivations(2, 'qkv')
    expect(s.activationFocus).toMatchObject({ layer: 2, group: 'qkv' })
    expect(s.activationFocus!.seq).toBeGreaterThan(first.seq)
  })

  it('opens what the desktop file dialog chose, and nothing when it was cancelled', async () => {
    const s = useImatrixStore()
    await s.choose()
    expect(engine.imatrixReads).toEqual([])
    engine.pickModel = async () => profile.path
    await s.choose()
    expect(engine.imatrixReads.map((r) => r.path)).toEqual([profile.path])
    expect(s.path).toBe(profile.path)
  })

  it('reports a refused file and drops the profile when another model opens', async () => {
    const s = useImatrixStore()
    await s.open('/m/missing.dat')
    expect(s.slot.failure).toContain('/m/missing.dat')
    expect(useErrorStore().errors.at(-1)!.message).toContain('/m/missing.dat')
    await s.open(profile.path)
    expect(s.slot.failure).toBeNull()
    await useModelStore().open('/models/b')
    expect(s.slot.profile).toBeNull()
  })
})
