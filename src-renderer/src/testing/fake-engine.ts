// An engine stand-in for store tests: records calls, and lets each test decide when jobs report.

import type {
  AppInfo,
  CompressionPrediction,
  HeadWeights,
  ImatrixProfile,
  JobSpec,
  JobUpdate,
  ModelSummary,
  RecentModel,
  RecipeDoc,
  RecipePreset,
  ResultPoint,
  TensorInfo,
  WhittleApi,
} from '@contract/api'
import type { MethodInfo } from '@contract/method-params'
import type { GgufExportPlan, GgufTensorPlan, GgufTensorTypeName, GgufTypeFlags } from '@contract/gguf-export-types'
import { TEST_CATALOGUE } from './method-catalogue'

export function summary(id: string, path: string): ModelSummary {
  return {
    id,
    path,
    format: 'safetensors',
    architecture: 'llama',
    declaredArchitecture: 'LlamaForCausalLM',
    layers: 1,
    hiddenSize: 4,
    heads: 1,
    kvHeads: 1,
    headDim: 4,
    intermediateSize: 8,
    vocabSize: 10,
    parameterCount: 100,
    dtypes: { F32: 1 },
    sizeOnDisk: 400,
    files: [`${path}/model.safetensors`],
    tensorCount: 1,
    warnings: [],
  }
}

export const tensorInfo: TensorInfo = { name: 'w', shape: [4, 4], dtype: 'F32', byteLength: 64, role: 'q', layer: 0 }

export class FakeEngine implements WhittleApi {
  info: AppInfo = {
    mode: 'web',
    version: 't',
    canPickFiles: false,
    demoPath: '/demo',
    evalTextPath: '/bundled/eval.txt',
    startupPath: null,
  }
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
  /** What listTensors answers. */
  tensors: TensorInfo[] = [tensorInfo]
  presets: RecipePreset[] = []
  /** Every recipe checkRecipe was asked about (objects, or the text it was given). */
  checked: (RecipeDoc | string)[] = []
  predicted: { modelId: string; recipe: RecipeDoc }[] = []
  /** A promise checkRecipe waits on, to order a slow check against a later one. */
  checkGate: Promise<void> | null = null

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
  listTensors = async (): Promise<TensorInfo[]> => this.tensors
  startJob = async (spec: JobSpec): Promise<string> => {
    if (this.refuseStart) throw new Error(this.refuseStart)
    const id = `job${this.started.length + 1}`
    this.started.push({ id, spec })
    if (!this.statuses.has(id))
      this.statuses.set(id, { id, kind: spec.kind, state: 'queued', progress: 0, message: 'queued' })
    this.onStart?.(id, spec)
    return id
  }
  cancelJob = async ({ id }: { id: string }): Promise<void> => {
    this.cancelled.push(id)
    if (!this.confirmCancel) return
    const kind = this.started.find((s) => s.id === id)?.spec.kind ?? 'tensor'
    this.emit({ id, kind, state: 'cancelled', progress: 0, message: 'cancelled' })
  }
  jobStatus = async ({ id }: { id: string }): Promise<JobUpdate | null> => this.statuses.get(id) ?? null
  /** Ids of pauseJob and resumeJob calls, in order, as 'pause:<id>' / 'resume:<id>'. */
  readonly pauses: string[] = []
  pauseJob = async ({ id }: { id: string }): Promise<void> => {
    this.pauses.push(`pause:${id}`)
  }
  resumeJob = async ({ id }: { id: string }): Promise<void> => {
    this.pauses.push(`resume:${id}`)
  }
  headWeights = async (req: { modelId: string; layer: number; head: number }): Promise<HeadWeights> => {
    this.headRequests.push(req)
    await this.headGates.get(`${req.layer}/${req.head}`)
    if (req.layer > 99) throw new Error(`layer ${req.layer} is outside [0, 2)`)
    const slice = (role: 'q' | 'k' | 'v' | 'o') => ({
      role,
      rows: 1,
      cols: 2,
      values: [req.layer, -req.head],
      sourceShape: [1, 2] as [number, number],
    })
    return { layer: req.layer, head: req.head, headDim: 1, slices: [slice('q'), slice('k'), slice('v'), slice('o')] }
  }
  recipePresets = async (): Promise<RecipePreset[]> => this.presets
  /**
   * A small stand-in for the engine's validator: JSON text only, known methods rtn and gptq, bits
   * in [2, 8]; the answer is normalised the way the engine does it (targets filled in).
   */
  checkRecipe = async (req: { recipe?: RecipeDoc; text?: string }): Promise<RecipeDoc> => {
    this.checked.push(req.text ?? req.recipe!)
    const gate = this.checkGate
    if (gate) await gate
    let doc: RecipeDoc
    if (req.text !== undefined) {
      try {
        doc = JSON.parse(req.text) as RecipeDoc
      } catch {
        throw new Error('recipe: is not valid YAML or JSON')
      }
    } else {
      doc = req.recipe!
    }
    if (!Array.isArray(doc.steps) || doc.steps.length === 0) throw new Error('recipe steps: must be a non-empty list')
    const steps = doc.steps.map((step, i) => {
      if (!FAKE_METHODS.includes(step.method))
        throw new Error(`recipe step ${i + 1}: unknown method "${step.method}" (known: ${FAKE_METHODS.join(', ')})`)
      const bits = step.params?.bits
      if (bits !== undefined && (typeof bits !== 'number' || bits < 2 || bits > 8)) {
        throw new Error(
          `recipe step ${i + 1} (${step.method}): params.bits must be an integer in [2, 8] (got ${JSON.stringify(bits)})`,
        )
      }
      return {
        method: step.method,
        targets: { include: step.targets?.include ?? [], exclude: step.targets?.exclude ?? [] },
        params: step.params ?? {},
      }
    })
    return {
      calibration: { samples: 128, seqlen: 256, seed: 0, ...doc.calibration },
      steps,
      overrides: doc.overrides ?? {},
    }
  }
  recipeToYaml = async ({ recipe }: { recipe: RecipeDoc }): Promise<string> => `# yaml\n${JSON.stringify(recipe)}\n`
  /** bits/w = the first step's bits + 0.5; every byte of the model is quantized at that rate. */
  predictCompression = async (req: { modelId: string; recipe: RecipeDoc }): Promise<CompressionPrediction> => {
    this.predicted.push(req)
    const bits = Number(req.recipe.steps[0]?.params?.bits ?? 4) + 0.5
    return { bitsPerWeight: bits, bytesBefore: 400, bytesAfter: Math.ceil((100 * bits) / 8), tensors: [] }
  }
  suggestExportPath = async (req: { modelId: string; format: string; ggufType?: string }): Promise<string> =>
    `/exports/${req.modelId}-${req.format}${req.ggufType ? `-${req.ggufType}` : ''}`
  /** A two-tensor plan: output.weight by the mix's output rule (or the flag), one attn_v at the base type. */
  planGgufExport = async (req: {
    modelId: string
    ggufType: string
    gguf?: GgufTypeFlags
  }): Promise<GgufExportPlan> => {
    const base = (req.ggufType.startsWith('Q') ? req.ggufType.slice(0, 4) : req.ggufType) as GgufTensorTypeName
    const output: GgufTensorPlan = req.gguf?.outputTensorType
      ? {
          name: 'output.weight',
          type: req.gguf.outputTensorType,
          rule: 'output-tensor-type',
          elements: 256,
          bytes: 256,
          bitsPerWeight: 8,
        }
      : { name: 'output.weight', type: 'Q6_K', rule: 'output-q6_k', elements: 256, bytes: 210, bitsPerWeight: 6.5625 }
    const v: GgufTensorPlan = {
      name: 'blk.0.attn_v.weight',
      type: base,
      rule: req.gguf?.pure ? 'pure' : 'base-type',
      elements: 256,
      bytes: 144,
      bitsPerWeight: 4.5,
      fallback: { from: 'Q6_K', reason: 'rows of 100 elements are not a whole number of blocks' },
    }
    return {
      type: req.ggufType as GgufExportPlan['type'],
      tensors: [output, v],
      skipped: [],
      bytes: output.bytes + v.bytes,
    }
  }
  /** Reports "written" by export jobs this fake finished: path → HTML. */
  reports = new Map<string, string>()
  readReport = async ({ path }: { path: string }): Promise<string> => {
    const html = this.reports.get(path)
    if (html === undefined) throw new Error(`${path}: not a report this session exported`)
    return html
  }
  /** Points listResults answers with (tests push what the engine would have recorded). */
  results: ResultPoint[] = []
  listResults = async (_req: { modelId: string }): Promise<ResultPoint[]> => this.results.slice()
  /** What listMethods answers; listMethodsCalls counts the asks (the store asks once). */
  methods: readonly MethodInfo[] = TEST_CATALOGUE
  listMethodsCalls = 0
  listMethods = async (): Promise<MethodInfo[]> => {
    this.listMethodsCalls++
    return [...this.methods]
  }
  /** Importance matrices readImatrix answers with, by path; every request is recorded. */
  imatrices = new Map<string, ImatrixProfile>()
  readonly imatrixReads: { path: string; modelId?: string }[] = []
  readImatrix = async (req: { path: string; modelId?: string }): Promise<ImatrixProfile> => {
    this.imatrixReads.push(req)
    const profile = this.imatrices.get(req.path)
    if (!profile) throw new Error(`${req.path}: not an importance matrix`)
    return profile
  }
  onJob = (listener: (u: JobUpdate) => void): (() => void) => {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }
  /** The latest update of every job, as the engine would answer jobStatus. */
  readonly statuses = new Map<string, JobUpdate>()
  /** Set to lose pushed updates (a dropped connection): jobStatus still knows them. */
  dropEvents = false
  emit(u: JobUpdate): void {
    this.statuses.set(u.id, u)
    if (this.dropEvents) return
    for (const l of this.listeners) l(u)
  }
}

/** Methods the fake's recipe check accepts. */
const FAKE_METHODS = ['rtn', 'gptq', 'wanda', 'drop_layers', 'prune_heads']

/** Lets queued promise callbacks run. */
export const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 0))
