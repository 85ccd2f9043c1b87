// An engine stand-in for store tests: records calls, and lets each test decide when jobs report.

import type {
  AppInfo, HeadWeights, JobSpec, JobUpdate, ModelSummary, RecentModel, TensorInfo, WhittleApi,
} from '@contract/api'

export function summary(id: string, path: string): ModelSummary {
  return {
    id, path, format: 'safetensors', architecture: 'llama', declaredArchitecture: 'LlamaForCausalLM', layers: 1,
    hiddenSize: 4, heads: 1, kvHeads: 1, headDim: 4, intermediateSize: 8, vocabSize: 10, parameterCount: 100,
    dtypes: { F32: 1 }, sizeOnDisk: 400, files: [`${path}/model.safetensors`], tensorCount: 1, warnings: [],
  }
}

export const tensorInfo: TensorInfo = { name: 'w', shape: [4, 4], dtype: 'F32', byteLength: 64, role: 'q', layer: 0 }

export class FakeEngine implements WhittleApi {
  info: AppInfo = { mode: 'web', version: 't', canPickFiles: false, demoPath: '/demo', evalTextPath: '/bundled/eval.txt', startupPath: null }
  started: { id: string; spec: JobSpec }[] = []
  cancelled: string[] = []
  opened: string[] = []
  headRequests: { modelId: string; layer: number; head: number }[] = []
  private listeners = new Set<(u: JobUpdate) => void>()
  /** Called inside startJob before it answers: lets a test emit updates that overtake the id. */
  onStart: ((id: string, spec: JobSpec) => void) | null = null
  /** Per path: a promise the open waits on, to order concurrent opens. */
  gates = new Map<string, Promise<void>>()
  /** Per "layer/head": a promise headWeights waits on, to order concurrent requests. */
  headGates = new Map<string, Promise<void>>()
  /** False: a cancel request is recorded but the job goes on, as when it was about to finish anyway. */
  confirmCancel = true
  /** Makes startJob refuse, the way the engine refuses a spec it cannot validate. */
  refuseStart: string | null = null

  appInfo = async (): Promise<AppInfo> => this.info
  pickModel = async (): Promise<string | null> => null
  openModel = async ({ path }: { path: string }): Promise<ModelSummary> => {
    this.opened.push(path)
    await this.gates.get(path)
    if (path.startsWith('/missing')) throw new Error(`${path}: no such file or folder`)
    return summary(`id:${path}`, path)
  }
  openDemo = async (): Promise<ModelSummary> => {
    this.opened.push('demo')
    return summary('id:demo', '/demo')
  }
  recentModels = async (): Promise<RecentModel[]> => []
  listTensors = async (): Promise<TensorInfo[]> => [tensorInfo]
  startJob = async (spec: JobSpec): Promise<string> => {
    if (this.refuseStart) throw new Error(this.refuseStart)
    const id = `job${this.started.length + 1}`
    this.started.push({ id, spec })
    this.onStart?.(id, spec)
    return id
  }
  cancelJob = async ({ id }: { id: string }): Promise<void> => {
    this.cancelled.push(id)
    if (!this.confirmCancel) return
    const kind = this.started.find((s) => s.id === id)?.spec.kind ?? 'tensor'
    this.emit({ id, kind, state: 'cancelled', progress: 0, message: 'cancelled' })
  }
  headWeights = async (req: { modelId: string; layer: number; head: number }): Promise<HeadWeights> => {
    this.headRequests.push(req)
    await this.headGates.get(`${req.layer}/${req.head}`)
    if (req.layer > 99) throw new Error(`layer ${req.layer} is outside [0, 2)`)
    const slice = (role: 'q' | 'k' | 'v' | 'o') => ({ role, rows: 1, cols: 2, values: [req.layer, -req.head], sourceShape: [1, 2] as [number, number] })
    return { layer: req.layer, head: req.head, headDim: 1, slices: [slice('q'), slice('k'), slice('v'), slice('o')] }
  }
  onJob = (listener: (u: JobUpdate) => void): (() => void) => {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }
  emit(u: JobUpdate): void {
    for (const l of this.listeners) l(u)
  }
}

/** Lets queued promise callbacks run. */
export const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 0))
