// The one typed contract between the renderer and the engine.
// Electron exposes it through preload/contextBridge, web mode through a WebSocket;
// the renderer codes against `WhittleApi` and never learns which one it has.
// Everything here must stay plain JSON-serialisable data (it crosses IPC and WebSocket).

import type { MethodInfo } from './method-params'
import type { GgufExportPlan, GgufTypeFlags } from './gguf-export-types'
import type { RecipeDoc } from './recipe-doc'

export type { RecipeDoc, RecipeSweep, SweepValue } from './recipe-doc'

export type { JobId, ModelId, TensorRole } from './basics'
import type { JobId, ModelId, TensorRole } from './basics'

export interface ModelSummary {
  id: ModelId
  path: string
  /** 'safetensors' | 'gguf' */
  format: string
  /** How packed Linears are stored, e.g. "GPTQ 4-bit g128 act-order, sym"; absent when none are. */
  quantization?: string
  /** Adapter family: 'llama' | 'gpt2' | 'opt' | 'gpt-neox' | 'unknown' */
  architecture: string
  /** As declared by config.json or GGUF metadata, e.g. 'LlamaForCausalLM' or 'llama'. */
  declaredArchitecture: string
  layers: number
  hiddenSize: number
  heads: number
  kvHeads: number
  headDim: number
  intermediateSize: number
  vocabSize: number
  parameterCount: number
  /** dtype -> number of tensors */
  dtypes: Record<string, number>
  sizeOnDisk: number
  files: string[]
  tensorCount: number
  /** Non-fatal findings, e.g. config/tensor disagreements that were tolerated. */
  warnings: string[]
}

export interface TensorInfo {
  name: string
  /** PyTorch order: [out, in] for a Linear weight. */
  shape: number[]
  dtype: string
  byteLength: number
  role: TensorRole
  /** Decoder layer index, or null for tensors outside the blocks. */
  layer: number | null
}

export interface TensorStats {
  count: number
  /** Finite values only below. */
  min: number
  max: number
  mean: number
  std: number
  absmax: number
  /** Pearson kurtosis (normal = 3). */
  kurtosis: number
  zeroFraction: number
  nanCount: number
  infCount: number
}

export interface Histogram {
  lo: number
  hi: number
  counts: number[]
  /** Finite values below lo / above hi (none when the range is the data's own). */
  below: number
  above: number
}

export interface ChannelProfile {
  /** 'out' = one value per output row, 'in' = one per input column. */
  axis: 'out' | 'in'
  absmax: number[]
  l2: number[]
  median: number
  /** Indices whose absmax > k x median. */
  outliers: number[]
}

export interface TensorDetail {
  info: TensorInfo
  stats: TensorStats
  histogram: Histogram
  /** Present for 2-D (or higher, flattened to 2-D) tensors. */
  channels?: { out: ChannelProfile; in: ChannelProfile; k: number }
  /** Down-sampled |w| (max-pooled) for 2-D tensors, row-major rows x cols. */
  heatmap?: { rows: number; cols: number; values: number[]; sourceShape: [number, number] }
  /** How the checkpoint stores the tensor, when not as the plain values above (packed Linear, GGUF blocks). */
  storage?: TensorStorage
}

// How a tensor is stored when the checkpoint holds it in another form than the values the views decode:
// a GPTQ or compressed-tensors packed Linear (integer codes, scales, zero points, g_idx), or a GGUF block
// type (blocks of codes sharing fp16 scales).

/** One tensor of the checkpoint that holds part of a packed Linear. */
export interface StoredPart {
  /** The checkpoint's own tensor name, e.g. `model.layers.0.self_attn.q_proj.qweight`. */
  name: string
  /** What it holds: packed integer codes, scales, packed zero points, the input → group map, the decoded shape. */
  role: 'codes' | 'scales' | 'zeros' | 'g_idx' | 'shape'
  dtype: string
  shape: number[]
  byteLength: number
}

export interface PackedLinearStorage {
  kind: 'packed-linear'
  scheme: 'gptq' | 'compressed-tensors'
  /** e.g. "GPTQ 4-bit g128 act-order, sym" */
  label: string
  bits: number
  /** Inputs per group; -1 = one group per output row. */
  groupSize: number
  /** Groups each output row holds (rows of scales). */
  groups: number
  /** Declared by the config, or a g_idx that is not the sequential grouping. */
  actOrder: boolean
  symmetric: boolean
  parts: StoredPart[]
  /** Bits the parts take per decoded weight: 8 · their bytes ÷ (rows · cols). */
  bitsPerWeight: number
  /** How many weights hold each integer code: codes[q] for q = 0 .. 2^bits − 1. */
  codes: number[]
  /** How many (row, group) zero points hold each code, as the loader uses them; null when none are stored. */
  zeros: number[] | null
  /** The scales, decoded to f32. */
  scales: Histogram
}

/** One fp16 (or f32) scale field every block of a GGUF type carries. */
export interface BlockScaleField {
  /** ggml's field name: 'd' (the scale), 'dmin' (K-quants' min scale) or 'm' (the legacy types' min). */
  field: 'd' | 'dmin' | 'm'
  histogram: Histogram
}

export interface GgufBlockStorage {
  kind: 'gguf-blocks'
  /** ggml's type name, e.g. 'Q4_K'. */
  type: string
  /** e.g. "Q4_K · 256 per block · 144 B" */
  label: string
  blockElements: number
  blockBytes: number
  blocks: number
  bitsPerWeight: number
  /** Empty for a type whose scale is not a whole field (IQ1_M spreads it over its sub-block scales). */
  scales: BlockScaleField[]
}

export type TensorStorage = PackedLinearStorage | GgufBlockStorage

export type * from './analysis-types'
import type {
  ScanResult,
  CalibrationRequest,
  PerplexityReport,
  PerplexityProtocol,
  ImatrixProfile,
  ActivationReport,
  HeadImportance,
  LayerImportance,
  HeadWeights,
  KvCacheAnalysis,
} from './analysis-types'

export type * from './compress-types'
import type {
  RecipePreset,
  CompressionPrediction,
  CompressionSummary,
  ExportFormat,
  ExportRequest,
  ExportResult,
} from './compress-types'

export type JobSpec =
  | { kind: 'tensor'; modelId: ModelId; name: string; bins?: number; k?: number; range?: [number, number] }
  | { kind: 'scan'; modelId: ModelId; k?: number }
  | {
      kind: 'perplexity'
      modelId: ModelId
      text?: string
      seqlen?: number
      maxWindows?: number
      /** Default 'gptq'. */
      protocol?: PerplexityProtocol
    }
  | {
      kind: 'kv-cache'
      modelId: ModelId
      text?: string
      seqlen?: number
      maxWindows?: number
      /** KV-cache settings to measure ('token:4', 'kivi:2', 'q8_0', …); default: each scheme at usual widths. */
      settings?: string[]
      /** The context length the memory saving is computed for; default seqlen. */
      contextLength?: number
    }
  | { kind: 'activations'; modelId: ModelId; calibration?: CalibrationRequest; threshold?: number }
  | { kind: 'heads'; modelId: ModelId; calibration?: CalibrationRequest }
  | { kind: 'layers'; modelId: ModelId; calibration?: CalibrationRequest }
  | {
      kind: 'compress'
      modelId: ModelId
      recipe: RecipeDoc
      evalText?: string
      seqlen?: number
      maxEvalWindows?: number
    }
  | ({ kind: 'export' } & ExportRequest)

export type JobKind = JobSpec['kind']

export type JobState = 'queued' | 'running' | 'done' | 'error' | 'cancelled'

/** What a finished job of each kind produces (a kind missing here fails to compile JobUpdate). */
export interface JobResults {
  tensor: TensorDetail
  scan: ScanResult
  perplexity: PerplexityReport
  'kv-cache': KvCacheAnalysis
  activations: ActivationReport
  heads: HeadImportance
  layers: LayerImportance
  compress: CompressionSummary
  export: ExportResult
}

/** A finished job's kind with its result: what a job runner returns. */
export type JobOutcome = { [K in JobKind]: { kind: K; result: JobResults[K] } }[JobKind]

/** One optimizer step of a training (recovery) step, as its job's progress carries it. */
export interface TrainingStepPoint {
  /** 1-based: the step just finished. */
  step: number
  /** The objective: α·T²·KL + (1 − α)·CE (CE alone when nothing is distilled). */
  loss: number
  ce: number
  kl: number
  tokensPerSecond: number
  /** Seconds the remaining steps take at the rate so far. */
  etaSeconds: number
}

/** Perplexity on the eval text measured during training (distill's eval_every). */
export interface TrainingEvalPoint {
  /** 1-based: measured after this step. */
  step: number
  ppl: number
}

/**
 * Live numbers of a training step. Updates are rate-limited, so each one carries every step and eval
 * since the previous update (oldest first); a reader appends them, keyed by step.
 */
export interface TrainingProgress {
  /** Optimizer steps the training runs in all. */
  totalSteps: number
  steps: TrainingStepPoint[]
  evals: TrainingEvalPoint[]
}

/** Everything about a job's progress that does not depend on its kind. */
export interface JobStatus {
  id: JobId
  state: JobState
  /** 0..1 */
  progress: number
  message: string
  error?: string
  /** A job that trains is paused between two optimizer steps (its state stays 'running'). */
  paused?: boolean
  /** A job that trains: the steps and evals since the previous update. */
  training?: TrainingProgress
}

/**
 * One job's state as the engine reports it. A union over the kinds, so that checking `kind` narrows
 * `result`: `u.kind === 'perplexity'` makes `u.result` a PerplexityReport (present once state is 'done').
 */
export type JobUpdate = { [K in JobKind]: JobStatus & { kind: K; result?: JobResults[K] } }[JobKind]

export interface RecentModel {
  path: string
  openedAt: string
}

export interface AppInfo {
  mode: 'electron' | 'web'
  version: string
  /** True where a native open dialog exists (Electron). */
  canPickFiles: boolean
  demoPath: string | null
  /** The bundled eval text (TinyStories), for perplexity without choosing a file. */
  evalTextPath: string | null
  /** A model named on the command line (`--model`), to open instead of the demo on start. */
  startupPath: string | null
}

/** One compression run as a point on the Compare chart: its recipe, size and cost, and per-tensor errors. */
export interface ResultPoint {
  id: string
  /** ISO time the run ended. */
  at: string
  /** The source model's path (points are grouped by it). */
  modelPath: string
  modelName: string
  recipe: RecipeDoc
  /** The recipe in words, for tooltips. */
  label: string
  /** Over the compressed Linears. */
  bitsPerWeight: number
  bytesBefore: number
  bytesAfter: number
  bytesDenseAfter: number
  sparsity: number
  paramsAfter: number
  pplBefore: number | null
  pplAfter: number | null
  /** Perplexities compare only within one (text, seqlen, windows). */
  evalText: string | null
  seqlen: number
  maxEvalWindows: number | null
  tensors: {
    name: string
    method: string
    bitsPerWeight: number
    relWeightError: number
    relOutputError: number | null
  }[]
  /** The compressed model while this session still holds it (exportable); null for earlier sessions' points. */
  compressedModelId: ModelId | null
}

/** Every call the renderer can make. One function per call, each takes one plain object. */
export interface WhittleApi {
  appInfo(): Promise<AppInfo>
  /** Electron: shows a native dialog and returns the chosen path (null if cancelled). Web: always null. */
  pickModel(req: { folder: boolean }): Promise<string | null>
  openModel(req: { path: string }): Promise<ModelSummary>
  openDemo(): Promise<ModelSummary>
  recentModels(): Promise<RecentModel[]>
  listTensors(req: { modelId: ModelId }): Promise<TensorInfo[]>
  startJob(req: JobSpec): Promise<JobId>
  cancelJob(req: { id: JobId }): Promise<void>
  /**
   * A job's latest update as the engine holds it (null once forgotten, or never started here). Job events
   * are pushed, and a push can be lost (a dropped WebSocket); the renderer asks this to catch up.
   */
  jobStatus(req: { id: JobId }): Promise<JobUpdate | null>
  /** Holds a training job between two optimizer steps (the worker pool stays free); other jobs ignore it. */
  pauseJob(req: { id: JobId }): Promise<void>
  resumeJob(req: { id: JobId }): Promise<void>
  headWeights(req: { modelId: ModelId; layer: number; head: number }): Promise<HeadWeights>
  recipePresets(): Promise<RecipePreset[]>
  /** Validates a recipe (object or YAML/JSON text) and returns it normalised; errors name the step and field. */
  checkRecipe(req: { recipe?: RecipeDoc; text?: string }): Promise<RecipeDoc>
  recipeToYaml(req: { recipe: RecipeDoc }): Promise<string>
  predictCompression(req: { modelId: ModelId; recipe: RecipeDoc }): Promise<CompressionPrediction>
  /** A fresh destination path for an export of the model in a format (beside the source, never existing). */
  suggestExportPath(req: { modelId: ModelId; format: ExportFormat; ggufType?: string }): Promise<string>
  /** The HTML of a report this session exported (only paths returned in an ExportResult are readable). */
  readReport(req: { path: string }): Promise<string>
  /** A GGUF export's plan without writing it: each tensor's type, the policy rule that chose it, its size. */
  planGgufExport(req: { modelId: ModelId; ggufType: string; gguf?: GgufTypeFlags }): Promise<GgufExportPlan>
  /** Every compression result recorded for the model's source (this session's and earlier ones, UI and CLI). */
  listResults(req: { modelId: ModelId }): Promise<ResultPoint[]>
  /** Every compression method with its kind, summary and parameter specs (what recipe forms are built from). */
  listMethods(): Promise<MethodInfo[]>
  /** An importance matrix file (GGUF or legacy .dat): each entry's channel profile, placed on the model's Linears. */
  readImatrix(req: { path: string; modelId?: ModelId }): Promise<ImatrixProfile>
  /** Subscribe to job updates; returns an unsubscribe function. */
  onJob(listener: (update: JobUpdate) => void): () => void
}

/** Names of the request/response calls (everything but the event subscription). */
export const API_CALLS = [
  'appInfo',
  'pickModel',
  'openModel',
  'openDemo',
  'recentModels',
  'listTensors',
  'startJob',
  'cancelJob',
  'jobStatus',
  'pauseJob',
  'resumeJob',
  'headWeights',
  'recipePresets',
  'checkRecipe',
  'recipeToYaml',
  'predictCompression',
  'suggestExportPath',
  'readReport',
  'listResults',
  'listMethods',
  'planGgufExport',
  'readImatrix',
] as const satisfies readonly Exclude<keyof WhittleApi, 'onJob'>[]

export type ApiCall = (typeof API_CALLS)[number]

/** The error shape that crosses the bridge: a message a person can read. */
export interface ApiError {
  message: string
  /** e.g. 'format', 'validation', 'not-found', 'internal' */
  code: string
}

export const JOB_EVENT = 'whittle:job'
